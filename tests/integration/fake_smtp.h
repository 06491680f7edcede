/* fake_smtp.h — a small SMTP server (RFC 5321) for the notification tests, on a free loopback
 * port, one thread per connection.
 *
 * It speaks enough of the protocol for a submission client: the 220 greeting, EHLO/HELO
 * (advertising SIZE, 8BITMIME and, when credentials are set, AUTH PLAIN LOGIN — never
 * STARTTLS: it has no TLS), AUTH PLAIN (with or without an initial response) and AUTH LOGIN,
 * MAIL FROM, RCPT TO, DATA (undoing dot-stuffing), RSET, NOOP, QUIT, and 502 for anything
 * else. With credentials set, MAIL before a successful AUTH gets 530. The test chooses the
 * reply codes of MAIL, RCPT and the end of DATA, or a server that accepts connections and
 * never greets. The final 250 says "queued as FAKE<n>", like Postfix. A failed AUTH's 535
 * quotes the credentials it got (a careless server: tests check that canary masks them).
 * The last transaction is recorded: envelope, the whole message, AUTH result. */
#ifndef CANARY_TESTS_FAKE_SMTP_H
#define CANARY_TESTS_FAKE_SMTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define FAKE_SMTP_MAX_CONN 32
#define FAKE_SMTP_DATA_MAX 65536

struct fake_smtp_message {
    char ehlo[128];
    char mail_from[256];
    char rcpt_to[256];
    char data[FAKE_SMTP_DATA_MAX]; /* the message as received, dot-stuffing undone */
    bool auth_ok;
    char auth_user[128];
};

struct fake_smtp {
    int listen_fd;
    unsigned port;
    char url[64]; /* "smtp://127.0.0.1:<port>" */
    pthread_t acceptor;
    pthread_t conns[FAKE_SMTP_MAX_CONN];
    int n_conns;
    _Atomic bool stopping;
    pthread_mutex_t lock;
    /* Behaviour (set before sending; fake_smtp_set). */
    char username[64], password[64];         /* "" = no AUTH offered or required */
    int mail_code, rcpt_code, data_end_code; /* 0 = success */
    bool silent;                             /* accept, never greet */
    /* What happened. */
    int connections;
    int messages; /* transactions that reached the end of DATA */
    struct fake_smtp_message last;
};

/* Starts the server; username/password may be NULL (no AUTH). */
void fake_smtp_start(struct fake_smtp *s, const char *username, const char *password);
void fake_smtp_stop(struct fake_smtp *s);

/* Reply codes for MAIL FROM, RCPT TO and the end of DATA (0 = accept), and silence. */
void fake_smtp_set(struct fake_smtp *s, int mail_code, int rcpt_code, int data_end_code,
                   bool silent);

/* A copy of the last transaction, and the number of messages received. */
int fake_smtp_last(struct fake_smtp *s, struct fake_smtp_message *out);

#endif
