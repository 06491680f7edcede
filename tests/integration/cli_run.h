/* cli_run.h — integration-test helpers for the canary command-line tool: a directory of the
 * test's own, running the tool with its output captured, reading a file whole, and saying
 * clearly what a run did wrong.
 *
 * Each run gets an environment without any CANARY_* variable (the run's configuration is the
 * test's alone) plus the NAME=value strings the test gives, and its stdout and stderr go to
 * <dir>/run.out and <dir>/run.err, read back into the result. */
#ifndef CANARY_TESTS_CLI_RUN_H
#define CANARY_TESTS_CLI_RUN_H

#include <stddef.h>
#include <sys/types.h>

/* A test's own directory under /tmp, and paths in it. */
struct test_dir {
    char dir[64];
    char paths[128][160]; /* what test_dir_path returned: each call a fresh slot */
    size_t n_paths;
};

/* Makes /tmp/canary-<name>-XXXXXX (fails the test if it cannot). */
void test_dir_make(struct test_dir *t, const char *name);

/* Removes it with everything in it. */
void test_dir_remove(struct test_dir *t);

/* <dir>/<name>, valid until the test ends (at most 128 per test). */
const char *test_dir_path(struct test_dir *t, const char *name);

/* What one run of the canary binary did. */
struct cli_run {
    int status; /* exit status, or 128 + the signal that ended it */
    char *out;  /* stdout, NUL-terminated, malloc'd */
    char *err;  /* stderr, the same */
};

void cli_run_free(struct cli_run *r);

/* Starts this build's CLI (CANARY_CLI_PATH) with argv (argv[0] "canary", NULL-terminated),
 * stdout to the file out and stderr to err, in an environment without CANARY_* variables plus
 * env (NAME=value strings, NULL-terminated; NULL: none). The child dies with the test
 * (child_dies_with_test). Returns its pid; fails the test if it cannot fork. */
pid_t cli_spawn(const char *out, const char *err, const char *const *env, const char *const *argv);

/* Runs `canary <args...>` (NULL-terminated, at most 46) this build's CLI (CANARY_CLI_PATH),
 * capturing into files in dir; env: NAME=value strings set for the run (NULL-terminated;
 * NULL: none). Fails the test if it cannot be run or its output not read. */
struct cli_run cli_run(const char *dir, const char *const *env, ...);

/* A whole file, NUL-terminated, malloc'd (NULL when it cannot be read); *len its length when
 * len is not NULL. */
char *file_slurp(const char *path, size_t *len);

/* Fails with both outputs shown unless the run exited with want. */
void cli_expect_status(const struct cli_run *r, int want);

/* Fails, showing hay, unless hay contains needle. */
void expect_contains(const char *hay, const char *needle);

#endif
