// MixtralTokenizers: text <-> token ids for Mixtral-family models, exact to the reference
// libraries (every behaviour is checked against committed vectors made by
// scripts/tokenizers/*.py from sentencepiece, tokenizers, transformers and mistral-common).
//
// Entry points:
// - TokenizerLoader.load(path:) / loadWithConfiguration(path:): a model folder or a single file.
//   Folder precedence as transformers' AutoTokenizer: tokenizer.json, else tokenizer.model, else a
//   mistral-common *.model.v* file; tokenizer_config.json / chat_template.jinja alongside.
// - TokenizerLoader.fromGGUF(...): a tokenizer from GGUF metadata (tokenizer.ggml.*).
// - Tokenizer (protocol): encode / decode / special ids. Implementations:
//   SentencePieceTokenizer (tokenizer.model, sentencepiece semantics) and HFTokenizer
//   (tokenizer.json, tokenizers semantics).
// - StreamingDetokenizer: ids in, text deltas out.
// - ChatEncoder: conversation -> prompt ids, through the model's Jinja chat template
//   (ChatTemplate, transformers' apply_chat_template semantics) or mistral-common's instruct
//   encoding (MistralInstructEncoder) when there is no template.
//
// Layout: SentencePiece/ (protobuf reader, model, BPE), HuggingFace/ (tokenizer.json parts),
// Chat/ (messages, Jinja subset, mistral-common encoding), Support/ (JSON, heap, hash table).
