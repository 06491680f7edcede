/* cli_run.c — running the canary CLI from integration tests (cli_run.h). */
#include "cli_run.h"
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

void test_dir_make(struct test_dir *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/canary-%.24s-XXXXXX", name);
    assert_non_null(mkdtemp(t->dir));
}

void test_dir_remove(struct test_dir *t)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

const char *test_dir_path(struct test_dir *t, const char *name)
{
    assert_true(t->n_paths < sizeof t->paths / sizeof t->paths[0]);
    char tmp[sizeof t->paths[0]]; /* (not straight into t: it holds t->dir too) */
    snprintf(tmp, sizeof tmp, "%.63s/%.95s", t->dir, name);
    char *b = t->paths[t->n_paths++];
    memcpy(b, tmp, sizeof tmp);
    return b;
}

void cli_run_free(struct cli_run *r)
{
    free(r->out);
    free(r->err);
}

char *file_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, fp)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL)
                free(buf);
            buf = grown;
        }
    }
    fclose(fp);
    if (buf != NULL)
        buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* In the child: unsets every CANARY_* variable (one at a time: unsetenv edits environ). */
static void unset_canary_env(void)
{
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e != NULL && name[0] == '\0'; e++) {
            if (strncmp(*e, "CANARY_", 7) == 0)
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
        }
        if (name[0] == '\0')
            return;
        unsetenv(name);
    }
}

pid_t cli_spawn(const char *out, const char *err, const char *const *env, const char *const *argv)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_dies_with_test();
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(127);
        unset_canary_env();
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(CANARY_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

struct cli_run cli_run(const char *dir, const char *const *env, ...)
{
    const char *argv[48] = {"canary"};
    size_t n = 1;
    va_list ap;
    va_start(ap, env);
    for (const char *a; n < 47 && (a = va_arg(ap, const char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char out[256], err[256];
    snprintf(out, sizeof out, "%s/run.out", dir);
    snprintf(err, sizeof err, "%s/run.err", dir);
    pid_t pid = cli_spawn(out, err, env, argv);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    struct cli_run r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), file_slurp(out, NULL),
                        file_slurp(err, NULL)};
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

void cli_expect_status(const struct cli_run *r, int want)
{
    if (r->status != want)
        fail_msg("canary exited %d, wanted %d\n--- stdout:\n%s\n--- stderr:\n%s", r->status, want,
                 r->out, r->err);
}

void expect_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("expected \"%s\" in:\n%s", needle, hay);
}
