/* harness.c — the integration-test helpers; see harness.h. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

bool wait_until(bool (*fn)(void *arg), void *arg, int64_t timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        if (fn(arg))
            return true;
        if (now_ms() > deadline)
            return false;
        sleep_ms(20);
    }
}

void child_dies_with_test(void)
{
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127); /* the test process is already gone */
}

void daemon_init(struct daemon *d, ...)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/canary-it-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->db, sizeof d->db, "%s/canary.db", d->dir);
    snprintf(d->log, sizeof d->log, "%s/canaryd.log", d->dir);
    va_list ap;
    va_start(ap, d);
    /* Most tests send unsigned readings; canaryd's own default refuses them. A test that is
     * about the policy sets its own (a later --set wins). */
    d->extra[0] = "--set";
    d->extra[1] = "security.unsigned=accept";
    int n = 2;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        d->extra[n++] = a;
    d->extra[n] = NULL;
    va_end(ap);
}

static void dump_log(const struct daemon *d)
{
    FILE *f = fopen(d->log, "r");
    if (f == NULL)
        return;
    char line[1024];
    fprintf(stderr, "---- %s ----\n", d->log);
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

void daemon_start(struct daemon *d)
{
    char port_file[160];
    snprintf(port_file, sizeof port_file, "%s/port", d->dir);
    unlink(port_file);
    const char *argv[48];
    int n = 0;
    argv[n++] = CANARYD_PATH;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--db";
    argv[n++] = d->db;
    argv[n++] = "--ready-file";
    argv[n++] = port_file;
    for (int i = 0; d->extra[i] != NULL; i++)
        argv[n++] = d->extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_dies_with_test();
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
        }
        execv(CANARYD_PATH, (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(port_file, "r");
        if (f != NULL) {
            unsigned port = 0;
            int got = fscanf(f, "%u", &port);
            fclose(f);
            if (got == 1 && port > 0) {
                d->port = port;
                snprintf(d->base_url, sizeof d->base_url, "http://127.0.0.1:%u", port);
                return;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            dump_log(d);
            fail_msg("canaryd exited during start-up (status %d)", status);
        }
        sleep_ms(20);
    }
    dump_log(d);
    fail_msg("canaryd did not become ready within 10 s");
}

int daemon_stop(struct daemon *d, int sig)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    int status = 0;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
            return WEXITSTATUS(status);
        }
        sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
    dump_log(d);
    fail_msg("canaryd did not stop within 30 s of signal %d", sig);
    return -1;
}

void daemon_cleanup(struct daemon *d)
{
    if (d->pid > 0)
        daemon_stop(d, SIGKILL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d->dir);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_response *r = arg;
    size_t n = size * nmemb;
    char *b = realloc(r->body, r->body_len + n + 1);
    if (b == NULL)
        return 0;
    r->body = b;
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_response *r = arg;
    size_t n = size * nmemb;
    if (n > 13 && strncasecmp(data, "Retry-After:", 12) == 0)
        snprintf(r->retry_after, sizeof r->retry_after, "%.*s", (int)strcspn(data + 13, "\r\n"),
                 data + 13);
    if (n > 14 && strncasecmp(data, "Content-Type:", 13) == 0)
        snprintf(r->content_type, sizeof r->content_type, "%.*s", (int)strcspn(data + 14, "\r\n"),
                 data + 14);
    return n;
}

int http_call(struct daemon *d, const char *method, const char *path, const char *content_type,
              const char *body, size_t body_len, struct http_response *out)
{
    return http_call_with(d, method, path, NULL, content_type, body, body_len, out);
}

int http_call_with(struct daemon *d, const char *method, const char *path, const char *const *extra,
                   const char *content_type, const char *body, size_t body_len,
                   struct http_response *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return -1;
    char url[512];
    snprintf(url, sizeof url, "%s%s", d->base_url, path);
    struct curl_slist *headers = NULL;
    char ct[128];
    if (content_type != NULL) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, ct);
    }
    headers = curl_slist_append(headers, "Expect:");
    for (int i = 0; extra != NULL && extra[i] != NULL; i++)
        headers = curl_slist_append(headers, extra[i]);

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L); /* headers only: no body will come */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (d->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, d->ca_file);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (out->body == NULL) {
        out->body = calloc(1, 1);
        out->body_len = 0;
    }
    return rc == CURLE_OK ? 0 : -1;
}

void http_response_free(struct http_response *r)
{
    free(r->body);
    r->body = NULL;
}

static long call_json(struct daemon *d, const char *method, const char *path, const char *body,
                      cJSON **json)
{
    struct http_response r;
    int rc = http_call(d, method, path, body ? "application/json" : NULL, body,
                       body ? strlen(body) : 0, &r);
    if (json != NULL)
        *json = rc == 0 ? cJSON_Parse(r.body) : NULL;
    long status = rc == 0 ? r.status : -1;
    http_response_free(&r);
    return status;
}

long http_post_json(struct daemon *d, const char *path, const char *body, cJSON **json)
{
    return call_json(d, "POST", path, body, json);
}

long http_get_json(struct daemon *d, const char *path, cJSON **json)
{
    return call_json(d, "GET", path, NULL, json);
}

const char *json_error_code(cJSON *root)
{
    cJSON *e = cJSON_GetObjectItem(root, "error");
    cJSON *c = cJSON_GetObjectItem(e, "code");
    return cJSON_IsString(c) ? c->valuestring : "";
}

const char *json_error_field(cJSON *root)
{
    cJSON *e = cJSON_GetObjectItem(root, "error");
    cJSON *c = cJSON_GetObjectItem(e, "field");
    return cJSON_IsString(c) ? c->valuestring : "";
}

double json_number(cJSON *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *cur = root;
    char *save = NULL;
    for (char *p = strtok_r(buf, ".", &save); p != NULL && cur != NULL;
         p = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItem(cur, p);
    return cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

int raw_connect(struct daemon *d)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)d->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
