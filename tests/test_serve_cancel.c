/* dalle-c serve when clients go away and when it is told to stop: a client that hangs up
 * mid-stream cancels its running job (the row callback returns non-zero: the log says
 * after which row); a client that hangs up while its job waits gets the job dropped
 * before it runs; the server then generates as before. SIGTERM with a job running and
 * one waiting: the running one finishes and is answered, the waiting one gets 503, exit
 * status 0. Jobs are held after their first row through $DALLEC_SERVE_TEST_HOLD, so
 * each of these states is reached without relying on timing. */
#include "tests/serve_testlib.h"

#if !defined(DALLEC_TEST_CURL)
int main(void)
{
    printf("test_serve_cancel: skipped (dalle-c was built without the server, or libcurl is "
           "missing)\n");
    return TEST_SKIPPED;
}
#else

static const char stream[] = "{\"prompt\": \"a red circle\", \"seed\": 5, \"stream\": true}";
static const char plain[] = "{\"prompt\": \"a red circle\", \"seed\": 6}";

static void test_hang_up_mid_stream(const st_server_t *s, const char *hold)
{
    st_hold(hold, 1);
    st_reply_t r = {0};
    r.hang_up_after = "event: image_generation.partial_image";
    st_post(s, stream, &r);
    check(r.status == 200 && r.curl == CURLE_WRITE_ERROR, "hung up after the first row (%ld, "
          "curl %d)", r.status, (int)r.curl);
    st_reply_free(&r);
    if (st_wait_log(s, "job 1: cancelled after row 1 of 4: the client went away") == 0)
        printf("  a client hanging up mid-stream cancels its job after row 1 of %d\n", GT_G);
    remove(hold);
}

static void test_hang_up_while_queued(const st_server_t *s, const char *hold)
{
    st_hold(hold, 1);
    volatile int a_running = 0, a_stop = 0, b_stop = 0;
    st_async_t a = {0}, b = {0};
    a.r.got_data = &a_running;
    a.r.hang_up_flag = &a_stop;
    b.r.hang_up_flag = &b_stop;
    st_async_start(&a, s, stream);
    st_wait_flag(&a_running, "job 2 streamed its first row");
    st_async_start(&b, s, plain);
    st_wait_log(s, "job 3: queued, 1 ahead");
    b_stop = 1; /* B hangs up while it waits */
    st_async_join(&b);
    a_stop = 1; /* then A, while it is held running */
    st_async_join(&a);
    check(b.r.status == 0, "B hung up before any reply (status %ld)", b.r.status);
    if (st_wait_log(s, "job 2: cancelled after row 1") == 0 &&
        st_wait_log(s, "job 3: dropped from the queue: the client went away") == 0)
        printf("  a client hanging up while queued: its job is dropped unrun\n");
    st_reply_free(&a.r);
    st_reply_free(&b.r);
    remove(hold);

    st_reply_t r = {0};
    st_post(s, "{\"prompt\": \"a red circle\", \"n\": 2, \"seed\": 6}", &r);
    check(r.status == 200 && strstr(r.body, "b64_json"), "then a request is served: %ld",
          r.status);
    st_reply_free(&r);
}

static void test_stop_while_busy(const char *model, const char *hold, const char *env)
{
    st_server_t s;
    if (st_start(&s, model, NULL, env)) return;
    st_hold(hold, 1);
    volatile int a_running = 0;
    st_async_t a = {0}, b = {0};
    a.r.got_data = &a_running;
    st_async_start(&a, &s, stream);
    st_wait_flag(&a_running, "the first job streamed its first row");
    st_async_start(&b, &s, plain);
    st_wait_log(&s, "job 2: queued, 1 ahead");
    kill(s.pid, SIGTERM);
    st_wait_log(&s, "terminated: finishing the running job");
    remove(hold); /* the running job may go on */
    st_async_join(&a);
    st_async_join(&b);
    int rc = st_stop(&s, 0);
    check(a.r.status == 200 && strstr(a.r.body, "image_generation.completed"),
          "the running job finished and was answered: %ld", a.r.status);
    check(b.r.status == 503 && strstr(b.r.body, "shutting_down"),
          "the waiting job got 503: %ld %.200s", b.r.status, b.r.body);
    check(rc == 0, "exit status %d after SIGTERM", rc);
    printf("  SIGTERM while busy: the running job answered %ld, the waiting one %ld, exit %d\n",
           a.r.status, b.r.status, rc);
    st_reply_free(&a.r);
    st_reply_free(&b.r);
}

int main(void)
{
    st_files_t f;
    if (st_setup(&f)) return test_summary("test_serve_cancel");
    st_server_t s;
    if (st_start(&s, f.model, NULL, f.env) == 0) {
        test_hang_up_mid_stream(&s, f.hold);
        test_hang_up_while_queued(&s, f.hold);
        check(st_stop(&s, SIGINT) == 0, "SIGINT: exit status 0");
    }
    test_stop_while_busy(f.model, f.hold, f.env);
    curl_global_cleanup();
    return test_summary("test_serve_cancel");
}

#endif
