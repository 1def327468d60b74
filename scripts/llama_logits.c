// Prints llama.cpp's logits for a prompt of token ids and its greedy continuation, as JSON.
//
//     llama_logits MODEL.gguf 5,9,13 12 > out.json
//
// The prompt is decoded as one batch with logits at every position; each continuation token is
// then decoded alone. Output: {"input_ids": [...], "logits": [[...] per prompt position],
// "greedy": [...], "greedy_logits": [[...] per continuation step]}. Built against libllama by
// scripts/make_gguf_model_fixtures.py.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *data) {
    (void)level; (void)text; (void)data;
}

static void print_row(const float *row, int n) {
    printf("[");
    for (int i = 0; i < n; i++) printf(i ? ",%.9g" : "%.9g", row[i]);
    printf("]");
}

static int argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (row[i] > row[best]) best = i;
    return best;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s MODEL.gguf IDS N_PREDICT\n", argv[0]); return 2; }
    int ids[4096], count = 0;
    for (char *token = strtok(argv[2], ","); token && count < 4096; token = strtok(NULL, ",")) ids[count++] = atoi(token);
    int predict = atoi(argv[3]);
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params model_params = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], model_params);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    struct llama_context_params context_params = llama_context_default_params();
    context_params.n_ctx = count + predict + 8;
    context_params.n_batch = count;
    context_params.n_ubatch = count;
    context_params.n_threads = 1;
    context_params.n_threads_batch = 1;
    struct llama_context *context = llama_init_from_model(model, context_params);
    if (!context) { fprintf(stderr, "cannot make a context\n"); return 1; }
    int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    struct llama_batch batch = llama_batch_init(count, 0, 1);
    for (int i = 0; i < count; i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = count;
    if (llama_decode(context, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
    printf("{\"input_ids\":[");
    for (int i = 0; i < count; i++) printf(i ? ",%d" : "%d", ids[i]);
    printf("],\"logits\":[");
    for (int i = 0; i < count; i++) {
        if (i) printf(",");
        print_row(llama_get_logits_ith(context, i), vocab);
    }
    printf("],");
    int next = argmax(llama_get_logits_ith(context, count - 1), vocab);
    int greedy[4096];
    printf("\"greedy_logits\":[");
    for (int step = 0; step < predict; step++) {
        greedy[step] = next;
        if (step + 1 == predict) break;
        struct llama_batch one = llama_batch_get_one(&greedy[step], 1);
        if (llama_decode(context, one)) { fprintf(stderr, "decode failed\n"); return 1; }
        const float *row = llama_get_logits_ith(context, -1);
        if (step) printf(",");
        print_row(row, vocab);
        next = argmax(row, vocab);
    }
    printf("],\"greedy\":[");
    for (int i = 0; i < predict; i++) printf(i ? ",%d" : "%d", greedy[i]);
    printf("]}\n");
    llama_batch_free(batch);
    llama_free(context);
    llama_model_free(model);
    return 0;
}
