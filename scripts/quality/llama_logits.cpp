// llama.cpp's logits for a token sequence, and its greedy continuations, for comparisons
// with this engine.
//
//   llama_logits MODEL.gguf IDS(comma-separated) OUT.f32 [--sequential] [--batch-tokens N]
//                [--generate N] [--threads N]
//
// Writes float32 logits [tokens][vocab] (raw, row-major). By default the whole sequence is
// one batch (as `mixtral score` evaluates it); --sequential feeds one token per decode call;
// --batch-tokens N feeds the first N tokens as one batch and the rest one at a time.
// --generate N treats IDS as a prompt: it is fed as one batch, then up to N tokens are
// chosen greedily (argmax of the logits, as llama.cpp's greedy sampler) and fed back one
// per step until an end-of-generation token. The chosen ids (with that last token) are
// printed comma-separated on stdout; OUT gets the logits of every fed position. Built by
// scripts/quality/build_llama_logits.sh against llama.cpp's static libraries.
#include "llama.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf IDS OUT.f32 [--sequential] [--batch-tokens N] [--generate N] [--threads N]\n", argv[0]);
        return 2;
    }
    bool sequential = false;
    long first_batch = -1;
    long generate = 0;
    int threads = 2;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--sequential")) sequential = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch-tokens") && i + 1 < argc) first_batch = atol(argv[++i]);
        else if (!strcmp(argv[i], "--generate") && i + 1 < argc) generate = atol(argv[++i]);
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    std::vector<llama_token> ids;
    for (const char *p = argv[2]; *p;) {
        ids.push_back((llama_token)strtol(p, (char **)&p, 10));
        if (*p == ',') p++;
    }
    if (ids.empty()) { fprintf(stderr, "no token ids\n"); return 2; }
    if (generate > 0) first_batch = (long)ids.size();
    llama_backend_init();
    llama_model_params model_params = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(argv[1], model_params);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const llama_vocab *vocabulary = llama_model_get_vocab(model);
    llama_context_params context_params = llama_context_default_params();
    const size_t capacity = ids.size() + (size_t)generate + 8;
    context_params.n_ctx = capacity;
    context_params.n_batch = capacity;
    context_params.n_ubatch = capacity;
    context_params.n_threads = threads;
    context_params.n_threads_batch = threads;
    llama_context *context = llama_init_from_model(model, context_params);
    if (!context) { fprintf(stderr, "cannot create a context\n"); return 1; }
    const int vocab = llama_vocab_n_tokens(vocabulary);
    std::vector<float> logits;
    std::vector<llama_token> generated;
    const int step = sequential ? 1 : (int)ids.size();
    for (size_t start = 0; start < ids.size();) {
        int count = (int)std::min<size_t>(step, ids.size() - start);
        if (first_batch > 0) count = start == 0 ? (int)std::min<size_t>(first_batch, ids.size()) : 1;
        llama_batch batch = llama_batch_init(count, 0, 1);
        for (int i = 0; i < count; i++) {
            batch.token[i] = ids[start + i];
            batch.pos[i] = (llama_pos)(start + i);
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        batch.n_tokens = count;
        if (llama_decode(context, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        for (int i = 0; i < count; i++) {
            const float *row = llama_get_logits_ith(context, i);
            logits.insert(logits.end(), row, row + vocab);
        }
        llama_batch_free(batch);
        start += count;
        if (start == ids.size() && (long)generated.size() < generate) {
            const float *last = logits.data() + logits.size() - vocab;
            const llama_token next = (llama_token)(std::max_element(last, last + vocab) - last);
            generated.push_back(next);
            if (llama_vocab_is_eog(vocabulary, next)) break;  // printed (as generate returns it), not fed
            ids.push_back(next);
        }
    }
    for (size_t i = 0; i < generated.size(); i++) printf(i ? ",%d" : "%d", generated[i]);
    if (generate > 0) printf("\n");
    FILE *out = fopen(argv[3], "wb");
    if (!out) { fprintf(stderr, "cannot write %s\n", argv[3]); return 1; }
    fwrite(logits.data(), sizeof(float), logits.size(), out);
    fclose(out);
    llama_free(context);
    llama_model_free(model);
    return 0;
}
