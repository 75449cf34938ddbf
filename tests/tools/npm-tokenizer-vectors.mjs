// npm-tokenizer-vectors.mjs: ids of each string of a .inp file (split on
// "\n__ggml_vocab_test__\n") by transformers.js from DIR/tokenizer.json, one
// line per string in the .out format of tests/data/tokenizer-vectors/README.md.
//   node npm-tokenizer-vectors.mjs DIR INP OUT
import { env, PreTrainedTokenizer } from '@huggingface/transformers';
import fs from 'fs';
env.allowRemoteModels = false;
const [dir, inp, out] = process.argv.slice(2);
const tj = JSON.parse(fs.readFileSync(dir + '/tokenizer.json', 'utf8'));
const tc = JSON.parse(fs.readFileSync(dir + '/tokenizer_config.json', 'utf8'));
const tok = new PreTrainedTokenizer(tj, tc);
const sep = '\n__ggml_vocab_test__\n';
const cases = fs.readFileSync(inp, 'utf8').split(sep);
cases.pop();
const lines = cases.map(s => tok.encode(s, { add_special_tokens: false }).map(i => ' ' + i).join(''));
fs.writeFileSync(out, lines.join('\n') + '\n');
console.error(dir, cases.length, 'cases');
