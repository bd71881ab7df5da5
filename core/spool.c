/* The durable ingest spool (see spool.h). On disk, in spool.dir:
 *   LOCK                  flock()ed by the process that owns the spool
 *   progress              where replay stands: segment, offset, CRC (20 bytes)
 *   0000000000000001.seg  segments, appended in order, deleted once replayed
 * A record is a 20-byte header (magic, payload length, append time in µs,
 * CRC-32C of length+time+payload) and its payload. Appends go to the newest
 * segment under one mutex, then wait for an fdatasync that covers them; the
 * first waiter with none running does it for all (leader/follower group
 * commit, as PostgreSQL's WAL flush). The replayer reads only what is synced.
 * Never holds the mutex across an fdatasync of the segment being appended
 * to, except when closing it at rotation. */
#include "spool.h"

#include "buf.h"

#include <assert.h>
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "db.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"

#define MAGIC 0x50535446u /* the bytes "FTSP" on a little-endian machine; marks a record start */
#define HDR 20
#define MAX_RECORD (256u << 20) /* a length above this is corruption, not a record */
#define PROGRESS_SYNC_EVERY 64   /* consumed records between syncs of the progress file */

/* ---- CRC-32C ---- */

static uint32_t crc_table[256];

__attribute__((constructor)) static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t spool_crc32c(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    crc = ~crc;
    while (n--) crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- the spool ---- */

struct seg {
    uint64_t seq;
    size_t size; /* bytes in the file (the writer's: written so far) */
};

struct spool {
    pthread_mutex_t mu;
    pthread_cond_t synced; /* an fdatasync or a rotation finished */
    pthread_cond_t work;   /* the replayer's: something was appended, or stop */
    char dir[4096];
    int dirfd, lockfd, progfd;
    size_t max_bytes, segment_bytes;
    struct seg *segs; /* on disk, by seq; the last is the writer's */
    size_t nsegs, capsegs;
    /* writer (under mu) */
    int wfd;
    size_t wsynced;                      /* bytes of the writer's segment known to be on disk */
    uint64_t written_lsn, synced_lsn;    /* bytes appended / synced since open */
    int syncing;                         /* a leader is in fdatasync */
    int io_failed;                       /* an fdatasync failed: no more appends */
    int closing, appenders;              /* spool_close waits for the appends in progress */
    /* reader (the replayer's thread; the positions under mu) */
    uint64_t rseq;           /* committed: where replay stands (the progress file) */
    size_t roff;
    uint64_t cseq;           /* the cursor: after the last record read */
    size_t coff;
    struct seg ends[SPOOL_READ_MAX]; /* where each record read since the commit ends */
    int nread;
    uint64_t gseq;           /* the end of the last corrupt stretch counted */
    size_t goff;
    _Atomic long pending;
    int unsynced; /* records consumed since the progress file was last synced */
    int64_t oldest_us;
    double appended, replayed, corrupt, failed;
    /* the replayer */
    pthread_t th;
    int running, stop;
    struct db_pool *pool;
    struct cache *cache;
};

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int ioerr(char *err, size_t errlen, const char *what, const char *name)
{
    snprintf(err, errlen, "spool: %s %s: %s", what, name, strerror(errno));
    return -1;
}

static void seg_name(char *out, size_t n, uint64_t seq)
{
    snprintf(out, n, "%016llx.seg", (unsigned long long)seq);
}

static int seg_index(const struct spool *s, uint64_t seq)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].seq == seq) return (int)i;
    return -1;
}

/* Pending bytes on disk: every segment from the reader's, minus what it read. */
static size_t pending_bytes(const struct spool *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].seq >= s->rseq) n += s->segs[i].size;
    return n > s->roff ? n - s->roff : 0;
}

static int seg_add(struct spool *s, uint64_t seq, size_t size)
{
    if (s->nsegs == s->capsegs) {
        size_t cap = s->capsegs ? s->capsegs * 2 : 8;
        struct seg *g = mem_realloc(s->segs, cap * sizeof *g);
        if (!g) return -1;
        s->segs = g;
        s->capsegs = cap;
    }
    s->segs[s->nsegs++] = (struct seg){seq, size};
    return 0;
}

static int cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const struct seg *)a)->seq, y = ((const struct seg *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Writes where replay stands; syncs it when sync is set. */
static int progress_put(struct spool *s, int sync, char *err, size_t errlen);
static int progress_write(struct spool *s, char *err, size_t errlen) { return progress_put(s, 1, err, errlen); }

static int progress_put(struct spool *s, int sync, char *err, size_t errlen)
{
    unsigned char b[20];
    uint64_t off = s->roff;
    memcpy(b, &s->rseq, 8);
    memcpy(b + 8, &off, 8);
    uint32_t crc = spool_crc32c(0, b, 16);
    memcpy(b + 16, &crc, 4);
    if (pwrite(s->progfd, b, sizeof b, 0) != (ssize_t)sizeof b || (sync && fdatasync(s->progfd) != 0))
        return ioerr(err, errlen, "writing", "progress");
    return 0;
}

/* A record at buf[0..n): its total length, or 0 when it does not check out. */
static size_t record_at(const unsigned char *buf, size_t n, int64_t *t, const unsigned char **payload,
                        uint32_t *len)
{
    uint32_t magic, l, crc;
    if (n < HDR) return 0;
    memcpy(&magic, buf, 4);
    memcpy(&l, buf + 4, 4);
    if (magic != MAGIC || l > MAX_RECORD || (size_t)l > n - HDR) return 0;
    memcpy(&crc, buf + 16, 4);
    uint32_t c = spool_crc32c(0, buf + 4, 12);
    if (spool_crc32c(c, buf + HDR, l) != crc) return 0;
    if (t) memcpy(t, buf + 8, 8);
    if (payload) *payload = buf + HDR;
    if (len) *len = l;
    return HDR + (size_t)l;
}

/* Reads [off, end) of segment seq into a mem_alloc'd buffer. */
static unsigned char *read_range(struct spool *s, uint64_t seq, size_t off, size_t end, char *err, size_t errlen)
{
    char name[32];
    seg_name(name, sizeof name, seq);
    int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ioerr(err, errlen, "opening", name);
        return NULL;
    }
    unsigned char *buf = mem_alloc(end > off ? end - off : 1);
    size_t got = 0;
    while (buf && off + got < end) {
        ssize_t r = pread(fd, buf + got, end - off - got, (off_t)(off + got));
        if (r <= 0) {
            if (r < 0) ioerr(err, errlen, "reading", name);
            else snprintf(err, errlen, "spool: %s: shorter than expected", name);
            mem_free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)r;
    }
    if (!buf && !*err) snprintf(err, errlen, "out of memory");
    close(fd);
    return buf;
}

/* Counts the valid records of segment i from offset off (at open). */
static int count_records(struct spool *s, size_t i, size_t off, char *err, size_t errlen)
{
    size_t end = s->segs[i].size;
    if (off >= end) return 0;
    err[0] = 0;
    unsigned char *buf = read_range(s, s->segs[i].seq, off, end, err, errlen);
    if (!buf) return -1;
    for (size_t p = 0; p < end - off;) {
        int64_t t;
        size_t r = record_at(buf + p, end - off - p, &t, NULL, NULL);
        if (!r) {
            p++;
            continue;
        }
        if (atomic_fetch_add(&s->pending, 1) == 0) s->oldest_us = t;
        p += r;
    }
    mem_free(buf);
    return 0;
}

/* Starts segment seq for appends. */
static int writer_open(struct spool *s, uint64_t seq, char *err, size_t errlen)
{
    char name[32];
    seg_name(name, sizeof name, seq);
    s->wfd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s->wfd < 0) return ioerr(err, errlen, "creating", name);
    if (fsync(s->dirfd) != 0 || seg_add(s, seq, 0) != 0) {
        close(s->wfd);
        s->wfd = -1;
        return ioerr(err, errlen, "adding", name);
    }
    s->wsynced = 0;
    return 0;
}

struct spool *spool_open(const struct spool_options *o, char *err, size_t errlen)
{
    struct spool *s = mem_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->synced, NULL);
    pthread_cond_init(&s->work, NULL);
    s->dirfd = s->lockfd = s->progfd = s->wfd = -1;
    snprintf(s->dir, sizeof s->dir, "%s", o->dir);
    s->max_bytes = o->max_bytes;
    s->segment_bytes = o->segment_bytes ? o->segment_bytes : 64u << 20;
    err[0] = 0;
    for (char *sl = s->dir + 1;; sl++) { /* mkdir -p */
        int end = *sl == 0;
        if (*sl != '/' && !end) continue;
        *sl = 0;
        int r = mkdir(s->dir, 0700);
        if (!end) *sl = '/';
        if (r != 0 && errno != EEXIST) {
            ioerr(err, errlen, "creating", s->dir);
            goto fail;
        }
        if (end) break;
    }
    if ((s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        ioerr(err, errlen, "opening", s->dir);
        goto fail;
    }
    s->lockfd = openat(s->dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        if (s->lockfd >= 0 && errno == EWOULDBLOCK)
            snprintf(err, errlen, "spool: %s is in use by another tickforge process", s->dir);
        else ioerr(err, errlen, "locking", s->dir);
        goto fail;
    }
    DIR *d = fdopendir(dup(s->dirfd));
    if (!d) {
        ioerr(err, errlen, "listing", s->dir);
        goto fail;
    }
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        size_t n = strlen(e->d_name);
        if (n != 20 || strcmp(e->d_name + 16, ".seg")) continue;
        unsigned long long seq = strtoull(e->d_name, &end, 16);
        struct stat st;
        if (end != e->d_name + 16 || fstatat(s->dirfd, e->d_name, &st, 0) != 0) continue;
        if (seg_add(s, seq, (size_t)st.st_size) != 0) {
            closedir(d);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    closedir(d);
    if (s->nsegs) qsort(s->segs, s->nsegs, sizeof *s->segs, cmp_seg);

    /* where replay stood; a missing or torn progress file means "from the start" */
    s->progfd = openat(s->dirfd, "progress", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->progfd < 0) {
        ioerr(err, errlen, "opening", "progress");
        goto fail;
    }
    unsigned char pb[20];
    uint64_t pseq = 0, poff = 0;
    uint32_t crc;
    if (pread(s->progfd, pb, sizeof pb, 0) == (ssize_t)sizeof pb && (memcpy(&crc, pb + 16, 4), 1) &&
        spool_crc32c(0, pb, 16) == crc) {
        memcpy(&pseq, pb, 8);
        memcpy(&poff, pb + 8, 8);
    }
    s->rseq = pseq ? pseq : s->nsegs ? s->segs[0].seq : 1;
    s->roff = 0;
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].seq >= pseq) {
            s->rseq = s->segs[i].seq;
            s->roff = s->segs[i].seq == pseq && poff <= s->segs[i].size ? (size_t)poff : 0;
            break;
        }
    /* segments before the read position were replayed; a crash kept them */
    while (s->nsegs && s->segs[0].seq < s->rseq) {
        char name[32];
        seg_name(name, sizeof name, s->segs[0].seq);
        unlinkat(s->dirfd, name, 0);
        memmove(s->segs, s->segs + 1, --s->nsegs * sizeof *s->segs);
    }
    for (size_t i = 0; i < s->nsegs; i++)
        if (count_records(s, i, s->segs[i].seq == s->rseq ? s->roff : 0, err, errlen)) goto fail;
    if (writer_open(s, s->nsegs ? s->segs[s->nsegs - 1].seq + 1 : s->rseq, err, errlen)) goto fail;
    if (s->nsegs == 1) s->rseq = s->segs[0].seq, s->roff = 0;
    s->cseq = s->rseq;
    s->coff = s->roff;
    if (progress_write(s, err, errlen)) goto fail;
    metrics_add("tf_spool_appended_total", NULL, 0, "Batches appended to the ingest spool");
    metrics_add("tf_spool_replayed_total", NULL, 0, "Spooled batches stored in the database by the replayer");
    metrics_add("tf_spool_syncs_total", NULL, 0, "fdatasyncs of spool appends (each covers every append waiting)");
    metrics_add("tf_spool_corrupt_records_total", NULL, 0,
                "Spool records skipped because their checksum failed (torn or corrupt)");
    metrics_add("tf_spool_failed_records_total", NULL, 0,
                "Spooled batches the database refused repeatedly, skipped by the replayer");
    if (s->pending)
        log_info("spool: batches pending from an earlier run", "dir=\"%s\" records=%ld bytes=%zu", s->dir,
                 (long)s->pending, pending_bytes(s));
    return s;
fail:
    spool_close(s);
    return NULL;
}

void spool_close(struct spool *s)
{
    if (!s) return;
    spool_replayer_stop(s);
    pthread_mutex_lock(&s->mu);
    s->closing = 1; /* a late append (a request that outlived the drain) is refused */
    while (s->syncing || s->appenders) pthread_cond_wait(&s->synced, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->wfd >= 0) {
        fdatasync(s->wfd);
        close(s->wfd);
    }
    if (s->progfd >= 0) {
        if (s->unsynced) fdatasync(s->progfd);
        close(s->progfd);
    }
    if (s->lockfd >= 0) close(s->lockfd); /* releases the flock */
    if (s->dirfd >= 0) close(s->dirfd);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->synced);
    pthread_mutex_destroy(&s->mu);
    mem_free(s->segs);
    mem_free(s);
}

long spool_pending(const struct spool *s) { return atomic_load(&((struct spool *)s)->pending); }

/* Under mu, with no fdatasync running: syncs and closes the writer's
 * segment and starts the next one. */
static int rotate(struct spool *s, char *err, size_t errlen)
{
    if (fdatasync(s->wfd) != 0) {
        s->io_failed = 1;
        return ioerr(err, errlen, "syncing", "a segment");
    }
    close(s->wfd);
    s->wfd = -1;
    s->synced_lsn = s->written_lsn;
    pthread_cond_broadcast(&s->synced);
    return writer_open(s, s->segs[s->nsegs - 1].seq + 1, err, errlen);
}

int spool_append(struct spool *s, const void *payload, size_t len, int only_if_busy, char *err, size_t errlen)
{
    size_t total = HDR + len;
    int rc = SPOOL_OK;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        snprintf(err, errlen, "spool: closed (the server is stopping)");
        pthread_mutex_unlock(&s->mu);
        return SPOOL_ERROR;
    }
    s->appenders++;
    if (only_if_busy && atomic_load(&s->pending) == 0) {
        rc = SPOOL_IDLE;
        goto out;
    }
    while (s->syncing && s->segs[s->nsegs - 1].size > 0 &&
           s->segs[s->nsegs - 1].size + total > s->segment_bytes) /* rotate with no fdatasync running */
        pthread_cond_wait(&s->synced, &s->mu);
    if (s->io_failed || s->wfd < 0) {
        snprintf(err, errlen, "spool: an earlier write or sync failed; the spool is disabled until restart");
        rc = SPOOL_ERROR;
        goto out;
    }
    if (len > MAX_RECORD || pending_bytes(s) + total > s->max_bytes) {
        rc = SPOOL_FULL;
        goto out;
    }
    struct seg *w = &s->segs[s->nsegs - 1];
    if (w->size > 0 && w->size + total > s->segment_bytes) {
        if (rotate(s, err, errlen)) {
            rc = SPOOL_ERROR;
            goto out;
        }
        w = &s->segs[s->nsegs - 1];
    }
    unsigned char h[HDR];
    uint32_t magic = MAGIC, l = (uint32_t)len;
    int64_t t = now_us();
    memcpy(h, &magic, 4);
    memcpy(h + 4, &l, 4);
    memcpy(h + 8, &t, 8);
    uint32_t crc = spool_crc32c(spool_crc32c(0, h + 4, 12), payload, len);
    memcpy(h + 16, &crc, 4);
    struct iovec iov[2] = {{h, HDR}, {(void *)payload, len}};
    ssize_t wr = pwritev(s->wfd, iov, 2, (off_t)w->size);
    if (wr != (ssize_t)total) {
        if (wr < 0) ioerr(err, errlen, "writing", "a segment");
        else snprintf(err, errlen, "spool: short write (disk full?)");
        if (ftruncate(s->wfd, (off_t)w->size) != 0) s->io_failed = 1; /* a torn record the reader would skip */
        rc = SPOOL_ERROR;
        goto out;
    }
    w->size += total;
    s->written_lsn += total;
    if (atomic_fetch_add(&s->pending, 1) == 0) s->oldest_us = t;
    s->appended++;
    uint64_t mine = s->written_lsn;
    /* group commit: lead an fdatasync for everyone written so far, or wait for the running one */
    while (s->synced_lsn < mine && !s->io_failed) {
        if (s->syncing) {
            pthread_cond_wait(&s->synced, &s->mu);
            continue;
        }
        s->syncing = 1;
        uint64_t target = s->written_lsn, tseq = s->segs[s->nsegs - 1].seq;
        size_t toff = s->segs[s->nsegs - 1].size;
        int fd = s->wfd;
        pthread_mutex_unlock(&s->mu);
        int r = fdatasync(fd);
        int e = errno;
        metrics_add("tf_spool_syncs_total", NULL, 1, "fdatasyncs of spool appends (each covers every append waiting)");
        pthread_mutex_lock(&s->mu);
        s->syncing = 0;
        if (r == 0) {
            if (target > s->synced_lsn) s->synced_lsn = target;
            if (s->segs[s->nsegs - 1].seq == tseq && toff > s->wsynced) s->wsynced = toff;
        } else {
            s->io_failed = 1;
            errno = e;
            ioerr(err, errlen, "syncing", "a segment");
        }
        pthread_cond_broadcast(&s->synced);
    }
    if (s->synced_lsn < mine) {
        if (!*err) snprintf(err, errlen, "spool: fdatasync failed; the spool is disabled until restart");
        rc = SPOOL_ERROR;
        goto out;
    }
    pthread_cond_signal(&s->work);
out:
    if (--s->appenders == 0 && s->closing) pthread_cond_broadcast(&s->synced);
    pthread_mutex_unlock(&s->mu);
    if (rc == SPOOL_OK) metrics_add("tf_spool_appended_total", NULL, 1, "Batches appended to the ingest spool");
    return rc;
}

/* The synced end of segment seq, under mu. */
static size_t synced_end(const struct spool *s, uint64_t seq)
{
    int i = seg_index(s, seq);
    if (i < 0) return 0;
    if ((size_t)i == s->nsegs - 1) return s->wsynced;
    return s->segs[i].size;
}

long spool_read(struct spool *s, void **out, int64_t *appended_us, char *err, size_t errlen)
{
    *out = NULL;
    err[0] = 0;
    if (s->nread == SPOOL_READ_MAX) return 0; /* commit first */
    for (;;) {
        pthread_mutex_lock(&s->mu);
        uint64_t seq = s->cseq;
        size_t off = s->coff, end = synced_end(s, seq);
        int i = seg_index(s, seq);
        if (off >= end) {
            int more = i >= 0 && (size_t)i < s->nsegs - 1; /* an older segment read to its end: the next one */
            if (more) s->cseq = s->segs[i + 1].seq, s->coff = 0;
            pthread_mutex_unlock(&s->mu);
            if (!more) return 0;
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        /* the header first, then the whole record; a failed check reads the rest */
        unsigned char *buf = read_range(s, seq, off, off + HDR <= end ? off + HDR : end, err, errlen);
        if (!buf) return -1;
        uint32_t len = 0, magic = 0;
        if (off + HDR <= end) memcpy(&magic, buf, 4), memcpy(&len, buf + 4, 4);
        mem_free(buf);
        size_t want = magic == MAGIC && len <= MAX_RECORD && off + HDR + len <= end ? HDR + len : end - off;
        if (!(buf = read_range(s, seq, off, off + want, err, errlen))) return -1;
        int64_t t;
        const unsigned char *payload;
        size_t r = record_at(buf, want, &t, &payload, &len);
        if (r) {
            void *p = mem_alloc(len ? len : 1);
            if (!p) {
                mem_free(buf);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            memcpy(p, payload, len);
            mem_free(buf);
            pthread_mutex_lock(&s->mu);
            s->coff = off + r;
            s->ends[s->nread].seq = seq;
            s->ends[s->nread].size = off + r;
            if (s->nread++ == 0) s->oldest_us = t;
            pthread_mutex_unlock(&s->mu);
            *out = p;
            if (appended_us) *appended_us = t;
            return (long)len;
        }
        /* torn or corrupt: resynchronise on the next record that checks out */
        if (want < end - off) {
            mem_free(buf);
            want = end - off;
            if (!(buf = read_range(s, seq, off, end, err, errlen))) return -1;
        }
        size_t skip = 1;
        while (skip < want && !record_at(buf + skip, want - skip, NULL, NULL, NULL)) skip++;
        mem_free(buf);
        pthread_mutex_lock(&s->mu);
        int fresh = seq > s->gseq || (seq == s->gseq && off >= s->goff); /* not counted before a rewind */
        if (fresh) s->gseq = seq, s->goff = off + skip, s->corrupt++;
        if (s->cseq == seq && s->coff == off) s->coff = off + skip;
        pthread_mutex_unlock(&s->mu);
        if (fresh) {
            char name[32];
            seg_name(name, sizeof name, seq);
            log_error("spool: a torn or corrupt record skipped", "segment=%s offset=%zu bytes=%zu", name, off, skip);
            metrics_add("tf_spool_corrupt_records_total", NULL, 1,
                        "Spool records skipped because their checksum failed (torn or corrupt)");
        }
    }
}

int spool_commit(struct spool *s, int n, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    assert(n >= 0 && n <= s->nread);
    if (n > 0) {
        s->rseq = s->ends[n - 1].seq;
        s->roff = s->ends[n - 1].size;
        if (atomic_fetch_sub(&s->pending, n) == n) s->oldest_us = 0;
        int i = seg_index(s, s->rseq);
        if (i >= 0 && (size_t)i < s->nsegs - 1 && s->roff >= s->segs[i].size) /* at an older segment's end */
            s->rseq = s->segs[i + 1].seq, s->roff = 0;
        int dropped = 0;
        while (s->segs[0].seq < s->rseq) { /* read to their ends: gone */
            char name[32];
            seg_name(name, sizeof name, s->segs[0].seq);
            unlinkat(s->dirfd, name, 0);
            memmove(s->segs, s->segs + 1, --s->nsegs * sizeof *s->segs);
            dropped = 1;
        }
        struct seg *w = &s->segs[s->nsegs - 1];
        if (atomic_load(&s->pending) == 0 && s->rseq == w->seq && w->size > 0 && s->roff == w->size &&
            s->wsynced == w->size && !s->syncing && !s->io_failed) {
            /* drained: start afresh, so an empty spool is one empty file */
            uint64_t seq = w->seq;
            char name[32];
            seg_name(name, sizeof name, seq);
            close(s->wfd);
            s->wfd = -1;
            s->nsegs--;
            unlinkat(s->dirfd, name, 0);
            rc = writer_open(s, seq + 1, err, errlen);
            if (rc) s->io_failed = 1;
            s->rseq = s->segs[s->nsegs - 1].seq;
            s->roff = 0;
        }
        /* Synced at the drain (new batches then go straight to the database:
         * a replay of older ones after a crash must not follow them), when a
         * segment is dropped, and every PROGRESS_SYNC_EVERY records; in
         * between, a crash replays a few records again, in order, which the
         * idempotent stores absorb. */
        s->unsynced += n;
        int sync = atomic_load(&s->pending) == 0 || dropped || s->unsynced >= PROGRESS_SYNC_EVERY;
        if (!rc) rc = progress_put(s, sync, err, errlen);
        if (sync) s->unsynced = 0;
    }
    s->cseq = s->rseq; /* the records read and not committed are read again */
    s->coff = s->roff;
    s->nread = 0;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void spool_stats(struct spool *s, struct spool_stats *st)
{
    pthread_mutex_lock(&s->mu);
    st->records = atomic_load(&s->pending);
    st->bytes = pending_bytes(s);
    st->oldest_age_s = st->records && s->oldest_us ? (double)(now_us() - s->oldest_us) / 1e6 : 0;
    if (st->oldest_age_s < 0) st->oldest_age_s = 0;
    st->segments = (long)s->nsegs;
    st->appended = s->appended;
    st->replayed = s->replayed;
    st->corrupt = s->corrupt;
    st->failed = s->failed;
    pthread_mutex_unlock(&s->mu);
}

void spool_metrics(void *ud)
{
    struct spool_stats st;
    spool_stats(ud, &st);
    metrics_set("tf_spool_records", NULL, (double)st.records, "Batches in the ingest spool, not yet replayed");
    metrics_set("tf_spool_bytes", NULL, (double)st.bytes, "Bytes of the ingest spool not yet replayed");
    metrics_set("tf_spool_oldest_age_seconds", NULL, st.oldest_age_s,
                "Age of the oldest batch in the ingest spool (0 when empty)");
}

cJSON *spool_to_json(struct spool *s)
{
    if (!s) return cJSON_CreateNull();
    struct spool_stats st;
    spool_stats(s, &st);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "records", (double)st.records);
    cJSON_AddNumberToObject(o, "bytes", (double)st.bytes);
    cJSON_AddNumberToObject(o, "max_bytes", (double)s->max_bytes);
    cJSON_AddNumberToObject(o, "oldest_age_s", st.oldest_age_s);
    cJSON_AddNumberToObject(o, "segments", (double)st.segments);
    cJSON_AddNumberToObject(o, "appended", st.appended);
    cJSON_AddNumberToObject(o, "replayed", st.replayed);
    cJSON_AddNumberToObject(o, "corrupt", st.corrupt);
    cJSON_AddNumberToObject(o, "failed", st.failed);
    return o;
}

/* ---- batches as records ---- */

#define CANDLE_MAX (1 + INGEST_SYMBOL_MAX + 2 + 4 + 16 + 48)
#define TICK_MAX (1 + INGEST_SYMBOL_MAX + 1 + 4 + 16 + 40 + 16)

static int append_record(struct spool *s, struct buf *b, int only_if_busy, char *err, size_t errlen)
{
    int rc = SPOOL_ERROR;
    if (buf_failed(b)) snprintf(err, errlen, "out of memory");
    else rc = spool_append(s, b->p, b->len, only_if_busy, err, errlen);
    buf_free(b);
    return rc;
}

static int begin(struct buf *b, enum spool_kind kind, enum candles_policy pol, const char *source, size_t items,
                 size_t per_item, char *err, size_t errlen)
{
    size_t sl = strlen(source);
    if (sl > 63) sl = 63;
    buf_init(b, NULL, 0, 0);
    if (!buf_reserve(b, 8 + sl + items * per_item)) { /* sized up front: no growth item by item */
        buf_free(b);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    buf_putc(b, (char)1); /* format version */
    buf_putc(b, (char)kind);
    buf_putc(b, (char)pol);
    buf_putc(b, (char)sl);
    buf_put(b, source, sl);
    uint32_t n = (uint32_t)items;
    buf_put(b, &n, 4);
    return 0;
}

struct rbuf {
    const unsigned char *p;
    size_t n, at;
    int bad;
};

static void get(struct rbuf *r, void *v, size_t n)
{
    if (r->bad || r->at + n > r->n) {
        r->bad = 1;
        memset(v, 0, n);
        return;
    }
    memcpy(v, r->p + r->at, n);
    r->at += n;
}
static unsigned get8(struct rbuf *r)
{
    unsigned char c;
    get(r, &c, 1);
    return c;
}

/* ---- the two kinds of record ----
 * An item is: symbol length, symbol, the kind's flag bytes, leader (an
 * index among the record's items, or -1), ts_us, bucket_us, then the kind's
 * values. The shared fields are reached through the kind's ingest ref. */

struct rec_kind {
    enum spool_kind kind;
    const struct ingest_kind *items;
    size_t item_max; /* bytes of one item at most */
    void (*put_flags)(struct buf *w, const void *item);
    void (*put_values)(struct buf *w, const void *item);
    void (*get_flags)(struct rbuf *r, void *item);
    void (*get_values)(struct rbuf *r, void *item);
};

static void candle_put_flags(struct buf *w, const void *item)
{
    const struct candle *c = item;
    buf_putc(w, (char)c->tf);
    buf_putc(w, (char)c->has_spread);
}

static void candle_put_values(struct buf *w, const void *item)
{
    const struct candle *c = item;
    const double v[6] = {c->open, c->high, c->low, c->close, c->volume, c->spread};
    buf_put(w, v, sizeof v);
}

static void candle_get_flags(struct rbuf *r, void *item)
{
    struct candle *c = item;
    c->tf = (uint8_t)get8(r);
    c->has_spread = (uint8_t)get8(r);
}

static void candle_get_values(struct rbuf *r, void *item)
{
    struct candle *c = item;
    double v[6];
    get(r, v, sizeof v);
    c->open = v[0], c->high = v[1], c->low = v[2], c->close = v[3], c->volume = v[4], c->spread = v[5];
}

static void tick_put_flags(struct buf *w, const void *item)
{
    const struct tick *t = item;
    buf_putc(w, (char)(unsigned)(t->has_last | t->has_volume << 1 | t->has_flags << 2 | t->has_msc << 3 |
                       t->has_spread << 4));
}

static void tick_put_values(struct buf *w, const void *item)
{
    const struct tick *t = item;
    const double v[5] = {t->bid, t->ask, t->last, t->volume, t->spread};
    buf_put(w, v, sizeof v);
    buf_put(w, &t->flags, 8);
    buf_put(w, &t->ts_msc, 8);
}

static void tick_get_flags(struct rbuf *r, void *item)
{
    struct tick *t = item;
    unsigned f = get8(r);
    t->has_last = f & 1, t->has_volume = f >> 1 & 1, t->has_flags = f >> 2 & 1;
    t->has_msc = f >> 3 & 1, t->has_spread = f >> 4 & 1;
}

static void tick_get_values(struct rbuf *r, void *item)
{
    struct tick *t = item;
    double v[5];
    get(r, v, sizeof v);
    t->bid = v[0], t->ask = v[1], t->last = v[2], t->volume = v[3], t->spread = v[4];
    get(r, &t->flags, 8);
    get(r, &t->ts_msc, 8);
}

static const struct rec_kind rec_candles = {SPOOL_CANDLES, &candles_kind, CANDLE_MAX,
                                            candle_put_flags, candle_put_values, candle_get_flags,
                                            candle_get_values};
static const struct rec_kind rec_ticks = {SPOOL_TICKS, &ticks_kind, TICK_MAX, tick_put_flags,
                                          tick_put_values, tick_get_flags, tick_get_values};

/* Appends the valid items among items[0..n) as one record of kind rk and
 * marks them INGEST_QUEUED once it is on disk. */
static int append_items(struct spool *s, const struct rec_kind *rk, enum candles_policy pol,
                        const char *source, void *items, size_t n, size_t nvalid, int only_if_busy,
                        char *err, size_t errlen)
{
    struct buf w;
    size_t size = rk->items->size;
    int32_t *map = mem_alloc((n ? n : 1) * sizeof *map);
    if (!map || begin(&w, rk->kind, pol, source, nvalid, rk->item_max, err, errlen)) {
        if (map) mem_free(map);
        else snprintf(err, errlen, "out of memory");
        return SPOOL_ERROR;
    }
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const void *it = (char *)items + i * size;
        struct ingest_ref r;
        rk->items->ref((void *)it, &r);
        if (*r.status != INGEST_VALID) continue;
        map[i] = k++;
        int32_t leader = *r.leader >= 0 ? map[*r.leader] : -1;
        size_t sl = strlen(r.symbol);
        buf_putc(&w, (char)sl);
        buf_put(&w, r.symbol, sl);
        rk->put_flags(&w, it);
        buf_put(&w, &leader, 4);
        buf_put(&w, r.ts_us, 8);
        buf_put(&w, r.bucket_us, 8);
        rk->put_values(&w, it);
    }
    mem_free(map);
    int rc = append_record(s, &w, only_if_busy, err, errlen);
    for (size_t i = 0; rc == SPOOL_OK && i < n; i++) {
        struct ingest_ref r;
        rk->items->ref((char *)items + i * size, &r);
        if (*r.status == INGEST_VALID) *r.status = INGEST_QUEUED;
    }
    return rc;
}

int spool_append_candles(struct spool *s, struct candles_batch *b, enum candles_policy pol,
                         const char *source, int only_if_busy, char *err, size_t errlen)
{
    return append_items(s, &rec_candles, pol, source ? source : "ea", b->items, b->n, b->nvalid,
                        only_if_busy, err, errlen);
}

int spool_append_ticks(struct spool *s, struct ticks_batch *b, int only_if_busy, char *err,
                       size_t errlen)
{
    return append_items(s, &rec_ticks, CANDLES_MERGE, "ticks", b->items, b->n, b->nvalid,
                        only_if_busy, err, errlen);
}

/* n items of kind rk from r into a mem_calloc'd array (*out, NULL for none;
 * the caller frees it with mem_free), every one VALID. 0, or -1 when out of
 * memory or the bytes are not n items. */
static int get_items(struct rbuf *r, const struct rec_kind *rk, uint32_t n, void **out)
{
    size_t size = rk->items->size;
    char *items = NULL;
    if (n && !(items = mem_calloc(n, size))) return -1;
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        void *it = items + i * size;
        struct ingest_ref ref;
        rk->items->ref(it, &ref);
        size_t k = get8(r);
        if (k > INGEST_SYMBOL_MAX) r->bad = 1;
        get(r, ref.symbol, k);
        rk->get_flags(r, it);
        get(r, ref.leader, 4);
        if (*ref.leader >= (int32_t)i) r->bad = 1;
        get(r, ref.ts_us, 8);
        get(r, ref.bucket_us, 8);
        rk->get_values(r, it);
        *ref.status = INGEST_VALID;
    }
    if (r->bad) {
        mem_free(items);
        return -1;
    }
    *out = items;
    return 0;
}

int spool_decode(const void *payload, size_t len, struct spool_batch *out)
{
    struct rbuf r = {payload, len, 0, 0};
    memset(out, 0, sizeof *out);
    if (get8(&r) != 1) return -1;
    out->kind = (enum spool_kind)get8(&r);
    out->pol = (enum candles_policy)get8(&r);
    size_t sl = get8(&r);
    if (sl > 63 || out->pol > CANDLES_REPLACE) return -1;
    get(&r, out->source, sl);
    uint32_t n;
    get(&r, &n, 4);
    if (r.bad || n > len) return -1;
    const struct rec_kind *rk = out->kind == SPOOL_CANDLES ? &rec_candles
                                : out->kind == SPOOL_TICKS ? &rec_ticks
                                                           : NULL;
    void *items = NULL, *b;
    if (!rk || get_items(&r, rk, n, &items) < 0) return -1;
    if (!(b = ingest_batch_new(items, n, n))) {
        mem_free(items);
        return -1;
    }
    if (rk == &rec_candles) out->candles = b;
    else out->ticks = b;
    return 0;
}

/* ---- the replayer ---- */

#define REPLAY_ATTEMPTS 5 /* a record the database refuses this often is skipped */

static void invalidate(struct cache *cache, const struct candles_batch *b)
{
    for (size_t i = 0; cache && i < b->n; i++) {
        const struct candle *c = &b->items[i];
        if (c->status != INGEST_INSERTED && c->status != INGEST_UPDATED) continue;
        char prefix[INGEST_SYMBOL_MAX + 32];
        int n = snprintf(prefix, sizeof prefix, "candles:%s:%s:", c->symbol, ts_tf_name((enum ts_tf)c->tf));
        cache_delete_prefix(cache, prefix, (size_t)n);
    }
}

static void count_replayed(const struct ingest_counts *n)
{
    static const char *names[] = {"inserted", "duplicate", "updated"};
    const size_t v[] = {n->inserted, n->duplicates, n->updated};
    char lab[48];
    for (int i = 0; i < 3; i++) {
        if (!v[i]) continue;
        snprintf(lab, sizeof lab, "status=\"%s\"", names[i]);
        metrics_add("tf_spool_replayed_items_total", lab, (double)v[i], "Spooled items stored by the replayer, by status");
    }
}

/* Waits up to ms on the work condition (stop or an append wakes it); under mu. */
static void nap(struct spool *s, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->work, &s->mu, &ts);
}

/* A record's batch and its kind. */
static struct ingest_batch *batch_of(const struct spool_batch *b)
{
    return b->candles ? (void *)b->candles : (void *)b->ticks;
}

static const struct ingest_kind *kind_of(const struct spool_batch *b)
{
    return b->candles ? &candles_kind : &ticks_kind;
}

/* Appends b's items to g (the same kind) and frees b. 0, or -1 when out of
 * memory (b untouched). */
static int join(struct spool_batch *g, struct spool_batch *b)
{
    size_t size = kind_of(g)->size;
    struct ingest_batch *x = batch_of(g), *y = batch_of(b);
    char *items = mem_realloc(x->items, (x->n + y->n) * size);
    if (!items) return -1;
    if (y->n) memcpy(items + x->n * size, y->items, y->n * size);
    x->items = items, x->n += y->n, x->nvalid += y->nvalid;
    ingest_batch_free(y);
    b->candles = NULL, b->ticks = NULL;
    return 0;
}

static void batch_free(struct spool_batch *b)
{
    ingest_batch_free(batch_of(b));
    b->candles = NULL, b->ticks = NULL;
}

static size_t batch_len(const struct spool_batch *b)
{
    return batch_of(b)->n;
}

/* Consecutive records of one kind, policy and source are stored as one
 * batch of up to REPLAY_ITEMS items: one statement for many small spooled
 * requests, so a drain outpaces the requests still arriving. Items with the
 * same key in several records fold in order, as they would stored one by
 * one (every policy folds associatively). A group the database refuses is
 * retried record by record, to find the one to skip. */
#define REPLAY_ITEMS 5000

static void *replayer_main(void *arg)
{
    struct spool *s = arg;
    char err[1024];
    int attempts = 0, backoff = 100, one = 0;
    long drained = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (!s->stop && atomic_load(&s->pending) == 0) nap(s, 1000);
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        struct spool_batch g = {0};
        int nrec = 0, bad = 0, ioerr_ = 0;
        size_t items = 0;
        for (;;) {
            void *p;
            long len = spool_read(s, &p, NULL, err, sizeof err);
            if (len < 0) log_error("spool: cannot read", "error=\"%s\"", err), ioerr_ = 1;
            if (len <= 0) break;
            struct spool_batch b;
            int undecodable = spool_decode(p, (size_t)len, &b) != 0;
            mem_free(p);
            if (undecodable) {
                if (nrec == 0) bad = 1, nrec = 1; /* else it is read again, first of the next group */
                break;
            }
            if (nrec > 0 && (b.kind != g.kind || b.pol != g.pol || strcmp(b.source, g.source) ||
                             items + batch_len(&b) > REPLAY_ITEMS || join(&g, &b) != 0)) {
                batch_free(&b);
                break;
            }
            if (nrec == 0) g = b;
            nrec++;
            items = batch_len(&g);
            if (one) break;
        }
        if (nrec == 0) {
            spool_commit(s, 0, err, sizeof err);
            if (drained && spool_pending(s) == 0) log_info("spool: drained", "batches=%ld", drained), drained = 0;
            pthread_mutex_lock(&s->mu);
            if (!s->stop) nap(s, ioerr_ ? 1000 : 50);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        int rc;
        err[0] = 0;
        if (bad) {
            log_error("spool: a record this build cannot read skipped", NULL);
            rc = DB_ERROR;
            attempts = REPLAY_ATTEMPTS - 1;
        } else if ((g.candles ? candles_fold(g.candles) : ticks_fold(g.ticks)) != 0) {
            snprintf(err, sizeof err, "out of memory");
            rc = DB_ERROR;
        } else if (g.candles) {
            rc = candles_store(s->pool, g.candles, g.pol, g.source, err, sizeof err);
        } else {
            rc = ticks_store(s->pool, g.ticks, err, sizeof err);
        }
        if (rc == DB_OK) {
            struct ingest_counts n = {0};
            if (g.candles) candles_count(g.candles, &n), invalidate(s->cache, g.candles);
            else ticks_count(g.ticks, &n);
            count_replayed(&n);
            log_debug("spool: replayed", "kind=%s records=%d items=%zu inserted=%zu duplicates=%zu updated=%zu",
                      g.candles ? "candles" : "ticks", nrec, n.received, n.inserted, n.duplicates, n.updated);
            metrics_add("tf_spool_replayed_total", NULL, nrec, "Spooled batches stored in the database by the replayer");
            if (spool_commit(s, nrec, err, sizeof err) != 0) log_error("spool: cannot record progress", "error=\"%s\"", err);
            pthread_mutex_lock(&s->mu);
            s->replayed += nrec;
            pthread_mutex_unlock(&s->mu);
            drained += nrec;
            attempts = 0, one = 0, backoff = 100;
        } else if (rc == DB_ERROR && nrec > 1) { /* refused: find the record, one at a time */
            one = 1;
            spool_commit(s, 0, err, sizeof err);
        } else if (rc == DB_ERROR && ++attempts >= REPLAY_ATTEMPTS) {
            log_error("spool: a batch the database refuses skipped", "attempts=%d error=\"%s\"", attempts, err);
            metrics_add("tf_spool_failed_records_total", NULL, 1,
                        "Spooled batches the database refused repeatedly, skipped by the replayer");
            if (spool_commit(s, 1, err, sizeof err) != 0) log_error("spool: cannot record progress", "error=\"%s\"", err);
            pthread_mutex_lock(&s->mu);
            s->failed++;
            pthread_mutex_unlock(&s->mu);
            attempts = 0, one = 0;
        } else {
            /* the database is away (or refused): the same records again later */
            spool_commit(s, 0, err, sizeof err);
            pthread_mutex_lock(&s->mu);
            if (!s->stop) nap(s, backoff);
            pthread_mutex_unlock(&s->mu);
            backoff = backoff < 1000 ? backoff * 2 : 1000;
        }
        batch_free(&g);
    }
    return NULL;
}

int spool_replayer_start(struct spool *s, struct db_pool *p, struct cache *cache, char *err, size_t errlen)
{
    s->pool = p;
    s->cache = cache;
    s->stop = 0;
    if (pthread_create(&s->th, NULL, replayer_main, s) != 0) {
        snprintf(err, errlen, "spool: cannot start the replayer thread");
        return -1;
    }
    s->running = 1;
    return 0;
}

void spool_replayer_stop(struct spool *s)
{
    if (!s || !s->running) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    s->running = 0;
}

void spool_kick(struct spool *s)
{
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
}
