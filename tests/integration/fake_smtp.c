/* fake_smtp.c — the test SMTP server (fake_smtp.h): an accept thread and one thread per
 * connection reading lines with poll(), so that stopping never waits on a silent client. */
#include "fake_smtp.h"

#include "fake_http.h" /* fake_base64_decode */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Copies src into dst[cap], cut to fit. */
static void scopy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

struct session {
    struct fake_smtp *s;
    int fd;
    char buf[8192];
    size_t len;
};

static void reply(struct session *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct session *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 3)
        n = (int)sizeof line - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    ssize_t w = send(c->fd, line, (size_t)n, MSG_NOSIGNAL);
    (void)w;
}

/* Reads one line (without CRLF) into out. Returns false on EOF, error, stop, or 30 s idle. */
static bool read_line(struct session *c, char *out, size_t cap)
{
    int idle_ms = 0;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            size_t k = n > 0 && c->buf[n - 1] == '\r' ? n - 1 : n;
            if (k >= cap)
                k = cap - 1;
            memcpy(out, c->buf, k);
            out[k] = '\0';
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return true;
        }
        if (c->len == sizeof c->buf)
            c->len = 0; /* an absurd line: drop it */
        if (c->s->stopping || idle_ms > 30000)
            return false;
        struct pollfd p = {c->fd, POLLIN, 0};
        int r = poll(&p, 1, 100);
        if (r == 0) {
            idle_ms += 100;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (got <= 0)
            return false;
        c->len += (size_t)got;
        idle_ms = 0;
    }
}

static void address(const char *arg, char *out, size_t cap)
{
    const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (lt == NULL || gt == NULL) {
        out[0] = '\0';
        return;
    }
    snprintf(out, cap, "%.*s", (int)(gt - lt - 1), lt + 1);
}

/* Checks "\0user\0password" (PLAIN) against the configured credentials. */
static bool check_plain(struct fake_smtp *s, const char *b64, char *user, size_t ucap)
{
    unsigned char raw[512];
    int n = fake_base64_decode(b64, raw, sizeof raw - 1);
    if (n < 2)
        return false;
    raw[n] = '\0';
    const char *authz = (const char *)raw;
    const char *u = authz + strlen(authz) + 1;
    if (u >= (const char *)raw + n)
        return false;
    const char *p = u + strlen(u) + 1;
    if (p > (const char *)raw + n)
        return false;
    scopy(user, ucap, u);
    return strcmp(u, s->username) == 0 && strcmp(p, s->password) == 0;
}

static bool decode_text(const char *b64, char *out, size_t cap)
{
    unsigned char raw[512];
    int n = fake_base64_decode(b64, raw, sizeof raw - 1);
    if (n < 0)
        return false;
    raw[n] = '\0';
    scopy(out, cap, (char *)raw);
    return true;
}

static void session_run(struct session *c)
{
    struct fake_smtp *s = c->s;
    pthread_mutex_lock(&s->lock);
    s->connections++;
    bool silent = s->silent;
    bool need_auth = s->username[0] != '\0';
    pthread_mutex_unlock(&s->lock);
    if (silent) {
        char line[64];
        while (read_line(c, line, sizeof line)) {
        }
        return;
    }
    struct fake_smtp_message *m = calloc(1, sizeof *m);
    if (m == NULL)
        return;
    bool authed = false, have_mail = false, have_rcpt = false;
    char line[1024];
    reply(c, "220 fake.smtp.test ESMTP canary-test");
    while (read_line(c, line, sizeof line)) {
        if (strncasecmp(line, "EHLO ", 5) == 0) {
            scopy(m->ehlo, sizeof m->ehlo, line + 5);
            reply(c, "250-fake.smtp.test");
            reply(c, "250-SIZE 10240000");
            if (need_auth)
                reply(c, "250-AUTH PLAIN LOGIN");
            reply(c, "250 8BITMIME");
        } else if (strncasecmp(line, "HELO ", 5) == 0) {
            scopy(m->ehlo, sizeof m->ehlo, line + 5);
            reply(c, "250 fake.smtp.test");
        } else if (strncasecmp(line, "AUTH PLAIN", 10) == 0 && need_auth) {
            char b64[512];
            if (line[10] == ' ') {
                scopy(b64, sizeof b64, line + 11);
            } else {
                reply(c, "334 ");
                if (!read_line(c, b64, sizeof b64))
                    break;
            }
            authed = check_plain(s, b64, m->auth_user, sizeof m->auth_user);
            if (authed)
                reply(c, "235 2.7.0 Authentication successful");
            else
                reply(c, "535 5.7.8 Authentication credentials invalid (got %s)", b64);
        } else if (strncasecmp(line, "AUTH LOGIN", 10) == 0 && need_auth) {
            char u64[256] = "", p64[256] = "", user[128] = "", pass[128] = "";
            if (line[10] == ' ')
                scopy(u64, sizeof u64, line + 11);
            else {
                reply(c, "334 VXNlcm5hbWU6"); /* "Username:" */
                if (!read_line(c, u64, sizeof u64))
                    break;
            }
            reply(c, "334 UGFzc3dvcmQ6"); /* "Password:" */
            if (!read_line(c, p64, sizeof p64))
                break;
            authed = decode_text(u64, user, sizeof user) && decode_text(p64, pass, sizeof pass) &&
                     strcmp(user, s->username) == 0 && strcmp(pass, s->password) == 0;
            scopy(m->auth_user, sizeof m->auth_user, user);
            if (authed)
                reply(c, "235 2.7.0 Authentication successful");
            else
                reply(c, "535 5.7.8 Authentication credentials invalid (user %s, password %s)", u64,
                      p64);
        } else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
            pthread_mutex_lock(&s->lock);
            int code = s->mail_code;
            pthread_mutex_unlock(&s->lock);
            if (need_auth && !authed) {
                reply(c, "530 5.7.0 Authentication required");
            } else if (code != 0) {
                reply(c, "%d %d.1.0 Sender refused", code, code / 100);
            } else {
                address(line + 10, m->mail_from, sizeof m->mail_from);
                have_mail = true;
                have_rcpt = false;
                reply(c, "250 2.1.0 Ok");
            }
        } else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
            pthread_mutex_lock(&s->lock);
            int code = s->rcpt_code;
            pthread_mutex_unlock(&s->lock);
            char addr[256];
            address(line + 8, addr, sizeof addr);
            if (!have_mail) {
                reply(c, "503 5.5.1 Error: need MAIL command");
            } else if (code >= 500) {
                reply(c, "%d 5.1.1 <%s>: Recipient address rejected: User unknown", code, addr);
            } else if (code >= 400) {
                reply(c, "%d 4.2.1 <%s>: Mailbox temporarily unavailable", code, addr);
            } else {
                scopy(m->rcpt_to, sizeof m->rcpt_to, addr);
                have_rcpt = true;
                reply(c, "250 2.1.5 Ok");
            }
        } else if (strcasecmp(line, "DATA") == 0) {
            if (!have_rcpt) {
                reply(c, "503 5.5.1 Error: need RCPT command");
                continue;
            }
            reply(c, "354 End data with <CR><LF>.<CR><LF>");
            size_t len = 0;
            bool complete = false;
            char dl[1024];
            while (read_line(c, dl, sizeof dl)) {
                if (strcmp(dl, ".") == 0) {
                    complete = true;
                    break;
                }
                const char *t = dl[0] == '.' ? dl + 1 : dl; /* RFC 5321 §4.5.2 */
                size_t tl = strlen(t);
                if (len + tl + 2 < sizeof m->data) {
                    memcpy(m->data + len, t, tl);
                    memcpy(m->data + len + tl, "\r\n", 2);
                    len += tl + 2;
                }
            }
            m->data[len] = '\0';
            if (!complete)
                break;
            pthread_mutex_lock(&s->lock);
            int code = s->data_end_code;
            int n = ++s->messages;
            m->auth_ok = authed;
            s->last = *m;
            pthread_mutex_unlock(&s->lock);
            if (code >= 500)
                reply(c, "%d 5.7.1 Message rejected: looks like spam", code);
            else if (code >= 400)
                reply(c, "%d 4.3.1 Insufficient system storage", code);
            else
                reply(c, "250 2.0.0 Ok: queued as FAKE%04d", n);
            have_mail = have_rcpt = false;
        } else if (strcasecmp(line, "RSET") == 0) {
            have_mail = have_rcpt = false;
            reply(c, "250 2.0.0 Ok");
        } else if (strcasecmp(line, "NOOP") == 0) {
            reply(c, "250 2.0.0 Ok");
        } else if (strcasecmp(line, "QUIT") == 0) {
            reply(c, "221 2.0.0 Bye");
            break;
        } else {
            reply(c, "502 5.5.2 Error: command not recognized");
        }
    }
    free(m);
}

static void *session_thread(void *arg)
{
    struct session *c = arg;
    session_run(c);
    close(c->fd);
    free(c);
    return NULL;
}

static void *accept_thread(void *arg)
{
    struct fake_smtp *s = arg;
    while (!s->stopping) {
        struct pollfd p = {s->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        struct session *c = calloc(1, sizeof *c);
        pthread_mutex_lock(&s->lock);
        bool room = s->n_conns < FAKE_SMTP_MAX_CONN;
        pthread_mutex_unlock(&s->lock);
        if (c == NULL || !room) {
            free(c);
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        pthread_t t;
        if (pthread_create(&t, NULL, session_thread, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        s->conns[s->n_conns++] = t;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

void fake_smtp_start(struct fake_smtp *s, const char *username, const char *password)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    scopy(s->username, sizeof s->username, username ? username : "");
    scopy(s->password, sizeof s->password, password ? password : "");
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->listen_fd >= 0);
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&sa, &sl), 0);
    s->port = ntohs(sa.sin_port);
    snprintf(s->url, sizeof s->url, "smtp://127.0.0.1:%u", s->port);
    assert_int_equal(pthread_create(&s->acceptor, NULL, accept_thread, s), 0);
}

void fake_smtp_stop(struct fake_smtp *s)
{
    s->stopping = true;
    pthread_join(s->acceptor, NULL);
    close(s->listen_fd);
    for (int i = 0; i < s->n_conns; i++)
        pthread_join(s->conns[i], NULL);
    pthread_mutex_destroy(&s->lock);
}

void fake_smtp_set(struct fake_smtp *s, int mail_code, int rcpt_code, int data_end_code,
                   bool silent)
{
    pthread_mutex_lock(&s->lock);
    s->mail_code = mail_code;
    s->rcpt_code = rcpt_code;
    s->data_end_code = data_end_code;
    s->silent = silent;
    pthread_mutex_unlock(&s->lock);
}

int fake_smtp_last(struct fake_smtp *s, struct fake_smtp_message *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->last;
    int n = s->messages;
    pthread_mutex_unlock(&s->lock);
    return n;
}
