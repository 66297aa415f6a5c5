/* dalle-c serve's request bodies: any bytes as the body of POST /v1/images/generations
 * through api_parse_generation (server/api.c, jansson underneath), for a model that
 * makes 16x16 images, once without a scorer and once with one. Built when the server is
 * (tests/fuzz/CMakeLists.txt).
 *
 * Promises: a refused body gets a 400 (500 only when out of memory) whose error body is
 * JSON in OpenAI's shape with a one-line message; an accepted one holds a valid prompt
 * and settings dalle_params_check passes, n in 1..SERVER_MAX_IMAGES, candidates in
 * 1..DALLE_MAX_IMAGES with n x candidates at most DALLE_MAX_IMAGES, and a seed. Without
 * a scorer candidates is 1; a body the scorerless model takes, the model with a scorer
 * takes with the same settings, and a body only the latter takes asks for candidates
 * above 1 (the scorer's 400 names "candidates"). */
#include "server/server_internal.h"
#include "tests/fuzz/fuzz.h"

#include <jansson.h>

static void check_error_body(const api_error_t *e)
{
    if (e->status != 400 && e->status != 500) fuzz_fail("a refusal with status %d", e->status);
    if (!e->message[0] || strchr(e->message, '\n')) fuzz_fail("message \"%s\"", e->message);
    char *body = api_error_body(e);
    if (!body) fuzz_fail("no error body for \"%s\"", e->message);
    json_error_t je;
    json_t *v = json_loads(body, 0, &je);
    json_t *err = json_object_get(v, "error");
    if (!json_is_string(json_object_get(err, "message")) ||
        !json_is_string(json_object_get(err, "type")))
        fuzz_fail("error body not in OpenAI's shape: %s", body);
    json_decref(v);
    free(body);
}

static void check_accepted(const gen_request_t *req)
{
    char err[DALLE_ERR_SIZE];
    const dalle_params_t *p = &req->params;
    if (!req->prompt || dalle_prompt_check(req->prompt, err)) fuzz_fail("accepted a bad prompt");
    if (dalle_params_check(p, err)) fuzz_fail("accepted settings: %s", err);
    if (p->n_images < 1 || p->n_images > SERVER_MAX_IMAGES || p->seed < 0 ||
        p->candidates < 1 || p->n_images * p->candidates > DALLE_MAX_IMAGES)
        fuzz_fail("accepted n %d, candidates %d, seed %lld", p->n_images, p->candidates,
                  (long long)p->seed);
}

/* The body through a server whose model has a scorer or not: 1 when accepted (*req
 * then holds it), 0 when refused (e then holds why). */
static int parse(int has_scorer, const uint8_t *data, size_t size, gen_request_t *req,
                 api_error_t *e)
{
    static server_t s[2];
    server_t *srv = &s[has_scorer];
    if (!srv->size[0]) {
        srv->opt = server_options_default();
        srv->info.image_size = 16;
        srv->info.grid = 4;
        srv->info.has_scorer = has_scorer;
        snprintf(srv->size, sizeof srv->size, "16x16");
    }
    if (api_parse_generation(srv, (const char *)data, size, req, e)) {
        check_error_body(e);
        return 0;
    }
    check_accepted(req);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gen_request_t plain, scored;
    api_error_t plain_e, scored_e;
    int plain_ok = parse(0, data, size, &plain, &plain_e);
    int scored_ok = parse(1, data, size, &scored, &scored_e);
    if (plain_ok && plain.params.candidates != 1)
        fuzz_fail("candidates %d accepted without a scorer", plain.params.candidates);
    if (plain_ok && (!scored_ok || scored.params.n_images != plain.params.n_images ||
                     scored.params.candidates != 1 || strcmp(scored.prompt, plain.prompt) != 0))
        fuzz_fail("a body the scorerless model takes is %s with a scorer",
                  scored_ok ? "read otherwise" : "refused");
    if (scored_ok && !plain_ok &&
        (scored.params.candidates < 2 || strcmp(plain_e.param, "candidates") != 0))
        fuzz_fail("refused without a scorer (%s: %s) with candidates %d", plain_e.param,
                  plain_e.message, scored.params.candidates);
    if (plain_ok) gen_request_free(&plain);
    if (scored_ok) gen_request_free(&scored);
    return 0;
}
