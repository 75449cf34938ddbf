// npm-chat-prompts.mjs: the chat prompts of DIR's real chat_template, rendered
// and tokenized by transformers.js (add_generation_prompt, no tools), for the
// ids that tests/unit/test_tokenizer.c expects of tokenizer_chat_prompt.
// Prints three JSON lines, {user: {text, ids}}, {system: ...} and {no_think: ...},
// for the user turn "Hi there" alone, after the system prompt "Be brief.", and
// alone with enable_thinking false (TOK_CHAT_NO_THINK).
// The date is pinned to 2025-12-05 as SOURCE_DATE_EPOCH pins ours.
//   node npm-chat-prompts.mjs DIR
import { env, PreTrainedTokenizer } from '@huggingface/transformers';
import fs from 'fs';
env.allowRemoteModels = false;
const RealDate = Date;
globalThis.Date = class extends RealDate {
	constructor(...a) { super(...(a.length ? a : [2025, 11, 5, 12])); }
};
const dir = process.argv[2];
const tj = JSON.parse(fs.readFileSync(dir + '/tokenizer.json', 'utf8'));
const tc = JSON.parse(fs.readFileSync(dir + '/tokenizer_config.json', 'utf8'));
// Newer repositories keep the template beside the config, as we read it too.
if (!tc.chat_template && fs.existsSync(dir + '/chat_template.jinja'))
	tc.chat_template = fs.readFileSync(dir + '/chat_template.jinja', 'utf8');
const tok = new PreTrainedTokenizer(tj, tc);
const turn = (msgs, extra = {}) => {
	const opt = { add_generation_prompt: true, ...extra };
	const text = tok.apply_chat_template(msgs, { ...opt, tokenize: false });
	const enc = tok.apply_chat_template(msgs, { ...opt, tokenize: true, return_tensor: false });
	return { text, ids: (Array.isArray(enc) ? enc : enc.input_ids).join(' ') };
};
const user = { role: 'user', content: 'Hi there' };
console.log(JSON.stringify({ user: turn([user]) }));
console.log(JSON.stringify({ system: turn([{ role: 'system', content: 'Be brief.' }, user]) }));
console.log(JSON.stringify({ no_think: turn([user], { enable_thinking: false }) }));
