/* pipes: 1 MiB through a pipe to a forked child and a checksum back, EOF when
 * the writer closes, EPIPE when the reader is gone, poll() readiness, dup2. */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

#define TOTAL (1 << 20)

static uint32_t mix(uint32_t h, const unsigned char *p, size_t n)
{
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

int main(void)
{
    test_name = "pipes";
    int down[2], up[2];
    REQUIRE(pipe(down) == 0 && pipe(up) == 0, "pipe");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        unsigned char buf[4096];
        uint32_t h = 2166136261u;
        size_t got = 0;
        ssize_t n;
        while ((n = read(down[0], buf, sizeof buf)) > 0) {
            h = mix(h, buf, n);
            got += n;
        }
        uint64_t reply[2] = { h, got };
        _exit(write(up[1], reply, sizeof reply) == sizeof reply && n == 0 ? 0 : 3);
    }
    close(down[0]);
    close(up[1]);
    unsigned char buf[3000];
    uint32_t h = 2166136261u;
    size_t sent = 0;
    for (uint32_t x = 1; sent < TOTAL;) {
        size_t n = sizeof buf < TOTAL - sent ? sizeof buf : TOTAL - sent;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = x >> 24;
        }
        ssize_t w = write(down[1], buf, n);
        REQUIRE(w == (ssize_t)n, "write %zu bytes at %zu", n, sent);
        h = mix(h, buf, n);
        sent += n;
    }
    close(down[1]);  /* the child sees EOF */
    uint64_t reply[2] = { 0, 0 };
    CHECK(read(up[0], reply, sizeof reply) == sizeof reply, "read the child's reply");
    CHECK(reply[1] == TOTAL, "child read %llu bytes of %d", (unsigned long long)reply[1], TOTAL);
    CHECK(reply[0] == h, "checksum %08llx == %08x", (unsigned long long)reply[0], h);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child exit status %#x", status);
    close(up[0]);

    /* poll: not readable while empty, readable after a write */
    int p[2];
    REQUIRE(pipe(p) == 0, "pipe");
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    CHECK(poll(&pfd, 1, 0) == 0, "poll on an empty pipe returns 0");
    CHECK(write(p[1], "x", 1) == 1, "write 1 byte");
    CHECK(poll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN), "poll sees POLLIN");
    /* dup2 onto another descriptor reads the same pipe */
    CHECK(dup2(p[0], 10) == 10, "dup2");
    char c = 0;
    CHECK(read(10, &c, 1) == 1 && c == 'x', "read through the dup2'd descriptor");
    close(10);

    /* EPIPE with SIGPIPE ignored */
    signal(SIGPIPE, SIG_IGN);
    close(p[0]);
    errno = 0;
    CHECK(write(p[1], "y", 1) == -1 && errno == EPIPE, "write to a reader-less pipe gives EPIPE");
    close(p[1]);
    printf("pipes: %d bytes to a child and back, poll, dup2, EPIPE\n", TOTAL);
    return test_done();
}
