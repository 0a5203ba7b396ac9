// llama.cpp's logits for a token sequence, for comparisons with this engine.
//
//   llama_logits MODEL.gguf IDS(comma-separated) OUT.f32 [--sequential]
//
// Writes float32 logits [tokens][vocab] (raw, row-major). By default the whole sequence is
// one batch (as `mixtral score` evaluates it); --sequential feeds one token per decode call
// (as generation does). Built by scripts/quality/build_llama_logits.sh against llama.cpp's
// static libraries.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf IDS OUT.f32 [--sequential] [--threads N]\n", argv[0]);
        return 2;
    }
    bool sequential = false;
    int threads = 2;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--sequential")) sequential = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    }
    std::vector<llama_token> ids;
    for (const char *p = argv[2]; *p;) {
        ids.push_back((llama_token)strtol(p, (char **)&p, 10));
        if (*p == ',') p++;
    }
    llama_backend_init();
    llama_model_params model_params = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(argv[1], model_params);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    llama_context_params context_params = llama_context_default_params();
    context_params.n_ctx = ids.size() + 8;
    context_params.n_batch = ids.size() + 8;
    context_params.n_ubatch = ids.size() + 8;
    context_params.n_threads = threads;
    context_params.n_threads_batch = threads;
    llama_context *context = llama_init_from_model(model, context_params);
    if (!context) { fprintf(stderr, "cannot create a context\n"); return 1; }
    const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::vector<float> logits(ids.size() * (size_t)vocab);
    const int step = sequential ? 1 : (int)ids.size();
    for (size_t start = 0; start < ids.size(); start += step) {
        const int count = (int)std::min<size_t>(step, ids.size() - start);
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
            memcpy(&logits[(start + i) * vocab], llama_get_logits_ith(context, i), sizeof(float) * vocab);
        }
        llama_batch_free(batch);
    }
    FILE *out = fopen(argv[3], "wb");
    if (!out) { fprintf(stderr, "cannot write %s\n", argv[3]); return 1; }
    fwrite(logits.data(), sizeof(float), logits.size(), out);
    fclose(out);
    llama_free(context);
    llama_model_free(model);
    return 0;
}
