// npm-chat-prompts.mjs: the chat prompts of DIR's real chat_template, rendered
// and tokenized by transformers.js (add_generation_prompt, no tools), for the
// ids that tests/unit/test_tokenizer.c expects of tokenizer_chat_prompt.
// Prints two JSON lines, {user: {text, ids}} and {system: {text, ids}}, for the
// user turn "Hi there" alone and after the system prompt "Be brief.".
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
const tok = new PreTrainedTokenizer(tj, tc);
const turn = (msgs) => {
	const text = tok.apply_chat_template(msgs, { tokenize: false, add_generation_prompt: true });
	const enc = tok.apply_chat_template(msgs, { tokenize: true, add_generation_prompt: true, return_tensor: false });
	return { text, ids: (Array.isArray(enc) ? enc : enc.input_ids).join(' ') };
};
const user = { role: 'user', content: 'Hi there' };
console.log(JSON.stringify({ user: turn([user]) }));
console.log(JSON.stringify({ system: turn([{ role: 'system', content: 'Be brief.' }, user]) }));
