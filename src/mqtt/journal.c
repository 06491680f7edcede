/* journal.c — the crash-safe message log; see journal.h for the format and promises. */
#include "mqtt/journal.h"

#include "core/error.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC        "CNRYJ001"
#define SEG_HEADER   16
#define REC_HEADER   20
#define MAX_TOPIC    65535u
#define MAX_PAYLOAD  (256u << 20)
#define REUSE_MIN    (1u << 20) /* a fully released segment this large is rotated */
#define MAX_SEGMENTS 4096

struct segment {
    uint64_t first; /* first seqno */
    uint64_t last;  /* last seqno in it (first - 1 when empty) */
    char path[1100];
};

struct journal {
    pthread_mutex_t lock;
    char path[1024];
    size_t segment_bytes;
    struct segment *segs; /* ordered by first; the last one is open for appending */
    size_t n_segs;
    int fd;        /* the open segment, -1 before the first append */
    size_t size;   /* bytes in the open segment */
    uint64_t next; /* next seqno */
    uint64_t released;
    uint64_t replay_last; /* last seqno of the earlier run's records */
    struct journal_stats stats;
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct segment *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Reads a whole file into memory. NULL on failure. */
static uint8_t *read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        *len = got;
    }
    close(fd);
    return buf;
}

/* Walks the records of one segment image: calls fn (if any) for each valid one and
 * returns how many there were; *torn is set when the tail is not a clean end. */
static uint64_t walk(const uint8_t *buf, size_t len, uint64_t first, bool *torn,
                     int (*fn)(void *arg, const struct journal_record *r), void *arg, int *fn_rc)
{
    *torn = false;
    uint64_t n = 0;
    size_t off = SEG_HEADER;
    while (off < len) {
        if (len - off < REC_HEADER) {
            *torn = true;
            break;
        }
        const uint8_t *h = buf + off;
        uint32_t plen = get32(h + 4);
        uint32_t tlen = (uint32_t)h[8] | (uint32_t)h[9] << 8;
        if (plen > MAX_PAYLOAD || len - off - REC_HEADER < (size_t)tlen + plen) {
            *torn = true;
            break;
        }
        uint32_t crc = (uint32_t)crc32(0L, h + 4, REC_HEADER - 4 + tlen + plen);
        if (crc != get32(h)) {
            *torn = true;
            break;
        }
        if (fn != NULL && *fn_rc == 0) {
            struct journal_record r = {first + n, (int64_t)get64(h + 12),
                                       h[10],     (const char *)h + REC_HEADER,
                                       tlen,      (const char *)h + REC_HEADER + tlen,
                                       plen};
            *fn_rc = fn(arg, &r);
        }
        n++;
        off += REC_HEADER + tlen + plen;
    }
    return n;
}

/* Finds the earlier run's segments: <base>.<16 hex>. */
static int scan(struct journal *j, char *err, size_t errlen)
{
    char dirbuf[1024], basebuf[1024];
    snprintf(dirbuf, sizeof dirbuf, "%s", j->path);
    snprintf(basebuf, sizeof basebuf, "%s", j->path);
    const char *dir = dirname(dirbuf);
    const char *base = basename(basebuf);
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "journal: cannot read directory %s: %s", dir, strerror(errno));
        return CANARY_EIO;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strncmp(name, base, bl) != 0 || name[bl] != '.' || strlen(name + bl + 1) != 16)
            continue;
        char *end = NULL;
        uint64_t first = strtoull(name + bl + 1, &end, 16);
        if (*end != '\0' || first == 0 || j->n_segs >= MAX_SEGMENTS)
            continue;
        struct segment *s = &j->segs[j->n_segs++];
        s->first = first;
        s->last = first - 1;
        snprintf(s->path, sizeof s->path, "%s/%s", dir, name);
    }
    closedir(d);
    if (j->n_segs > 1) /* qsort(NULL, 0) is undefined */
        qsort(j->segs, j->n_segs, sizeof *j->segs, cmp_seg);
    return CANARY_OK;
}

int journal_open(struct journal **out, const char *path, size_t segment_bytes, char *err,
                 size_t errlen)
{
    struct journal *j = calloc(1, sizeof *j);
    if (j != NULL)
        j->segs = calloc(MAX_SEGMENTS + 1, sizeof *j->segs);
    if (j == NULL || j->segs == NULL) {
        free(j);
        snprintf(err, errlen, "journal: out of memory");
        return CANARY_ENOMEM;
    }
    snprintf(j->path, sizeof j->path, "%s", path);
    j->segment_bytes = segment_bytes < 4096 ? 4096 : segment_bytes;
    j->fd = -1;
    j->next = 1;
    pthread_mutex_init(&j->lock, NULL);
    int rc = scan(j, err, errlen);
    if (rc != 0) {
        journal_close(j);
        return rc;
    }
    for (size_t i = 0; i < j->n_segs; i++) {
        struct segment *s = &j->segs[i];
        size_t len = 0;
        uint8_t *buf = read_all(s->path, &len);
        bool torn = false;
        uint64_t n = 0;
        if (buf == NULL || len < SEG_HEADER || memcmp(buf, MAGIC, 8) != 0 ||
            get64(buf + 8) != s->first) {
            torn = len > 0;
        } else {
            int dummy = 0;
            n = walk(buf, len, s->first, &torn, NULL, NULL, &dummy);
        }
        free(buf);
        s->last = s->first + n - 1;
        if (torn) {
            j->stats.torn++;
            log_warn("mqtt.journal_torn",
                     "segment=%s records=%" PRIu64
                     " (the tail was cut by a crash or is damaged; the records before it are "
                     "replayed)",
                     s->path, n);
        }
        j->stats.replayed += n;
        if (s->last + 1 > j->next)
            j->next = s->last + 1;
    }
    j->replay_last = j->next - 1;
    j->released = 0;
    j->stats.segments = j->n_segs;
    *out = j;
    return CANARY_OK;
}

int journal_replay(struct journal *j, int (*fn)(void *arg, const struct journal_record *r),
                   void *arg, char *err, size_t errlen)
{
    int fn_rc = 0;
    for (size_t i = 0; i < j->n_segs && fn_rc == 0; i++) {
        struct segment *s = &j->segs[i];
        if (s->first > j->replay_last)
            break;
        size_t len = 0;
        uint8_t *buf = read_all(s->path, &len);
        if (buf == NULL) {
            snprintf(err, errlen, "journal: cannot read %s: %s", s->path, strerror(errno));
            return CANARY_EIO;
        }
        bool torn;
        if (len >= SEG_HEADER && memcmp(buf, MAGIC, 8) == 0)
            walk(buf, len, s->first, &torn, fn, arg, &fn_rc);
        free(buf);
    }
    return fn_rc;
}

uint64_t journal_last_seqno(struct journal *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t v = j->next - 1;
    pthread_mutex_unlock(&j->lock);
    return v;
}

/* Deletes closed segments whose records are all released. Caller holds the lock. */
static void drop_released(struct journal *j)
{
    size_t keep = 0;
    for (size_t i = 0; i < j->n_segs; i++) {
        struct segment *s = &j->segs[i];
        bool open_seg = j->fd >= 0 && i + 1 == j->n_segs;
        if (!open_seg && s->last <= j->released) {
            if (unlink(s->path) != 0 && errno != ENOENT)
                log_warn("mqtt.journal_unlink_failed", "segment=%s error=\"%s\"", s->path,
                         strerror(errno));
            continue;
        }
        j->segs[keep++] = *s;
    }
    j->n_segs = keep;
    j->stats.segments = keep;
}

/* Starts a new segment at seqno j->next. Caller holds the lock. */
static int rotate(struct journal *j)
{
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    if (j->n_segs >= MAX_SEGMENTS) {
        drop_released(j);
        if (j->n_segs >= MAX_SEGMENTS)
            return CANARY_EIO;
    }
    struct segment *s = &j->segs[j->n_segs];
    s->first = j->next;
    s->last = j->next - 1;
    snprintf(s->path, sizeof s->path, "%s.%016" PRIx64, j->path, s->first);
    int fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return CANARY_EIO;
    uint8_t h[SEG_HEADER];
    memcpy(h, MAGIC, 8);
    put64(h + 8, s->first);
    if (write(fd, h, sizeof h) != (ssize_t)sizeof h) {
        close(fd);
        unlink(s->path);
        return CANARY_EIO;
    }
    j->fd = fd;
    j->size = SEG_HEADER;
    j->n_segs++;
    drop_released(j);
    return CANARY_OK;
}

int journal_append(struct journal *j, const char *topic, size_t topic_len, const void *payload,
                   size_t payload_len, int64_t recv_ms, unsigned qos, uint64_t *seqno)
{
    if (topic_len > MAX_TOPIC || payload_len > MAX_PAYLOAD)
        return CANARY_ELIMIT;
    pthread_mutex_lock(&j->lock);
    int rc = CANARY_OK;
    bool all_released = j->released + 1 >= j->next;
    if (j->fd < 0 || j->size >= j->segment_bytes || (all_released && j->size >= REUSE_MIN))
        rc = rotate(j);
    if (rc == 0) {
        uint8_t h[REC_HEADER];
        put32(h + 4, (uint32_t)payload_len);
        h[8] = (uint8_t)topic_len;
        h[9] = (uint8_t)(topic_len >> 8);
        h[10] = (uint8_t)qos;
        h[11] = 0;
        put64(h + 12, (uint64_t)recv_ms);
        uLong crc = crc32(0L, h + 4, REC_HEADER - 4);
        crc = crc32(crc, (const Bytef *)topic, (uInt)topic_len);
        crc = crc32(crc, (const Bytef *)payload, (uInt)payload_len);
        put32(h, (uint32_t)crc);
        struct iovec iov[3] = {
            {h, sizeof h}, {(void *)topic, topic_len}, {(void *)payload, payload_len}};
        size_t want = sizeof h + topic_len + payload_len;
        ssize_t w = writev(j->fd, iov, 3);
        if (w != (ssize_t)want) {
            /* A partial record would be read as a torn tail; start over in a new segment so
             * later records are not hidden behind it. */
            rc = CANARY_EIO;
            j->size = j->segment_bytes;
        } else {
            j->size += want;
            *seqno = j->next++;
            j->segs[j->n_segs - 1].last = *seqno;
            j->stats.appended++;
        }
    }
    pthread_mutex_unlock(&j->lock);
    return rc;
}

void journal_release(struct journal *j, uint64_t upto)
{
    pthread_mutex_lock(&j->lock);
    if (upto > j->released) {
        j->released = upto;
        drop_released(j);
    }
    pthread_mutex_unlock(&j->lock);
}

void journal_get_stats(struct journal *j, struct journal_stats *out)
{
    pthread_mutex_lock(&j->lock);
    *out = j->stats;
    out->unreleased = j->next - 1 > j->released ? j->next - 1 - j->released : 0;
    pthread_mutex_unlock(&j->lock);
}

void journal_close(struct journal *j)
{
    if (j == NULL)
        return;
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    drop_released(j);
    free(j->segs);
    pthread_mutex_destroy(&j->lock);
    free(j);
}
