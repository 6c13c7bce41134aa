/* mmap: anonymous private memory, MAP_SHARED memory seen across fork, a file
 * mapping, mprotect to read-only (the write faults: SIGSEGV caught), munmap
 * (the access faults), mremap and brk. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static sigjmp_buf jb;
static volatile sig_atomic_t segv;

static void on_segv(int sig)
{
    (void)sig;
    segv++;
    siglongjmp(jb, 1);
}

static int faults(volatile char *p, int write)
{
    if (sigsetjmp(jb, 1) == 0) {
        if (write)
            *p = 1;
        else
            (void)*p;
        return 0;
    }
    return 1;
}

int main(void)
{
    test_name = "mmap";
    long page = sysconf(_SC_PAGESIZE);
    CHECK(page == 4096, "page size %ld", page);

    size_t len = 64 * page;
    unsigned char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(a != MAP_FAILED, "mmap anonymous private");
    int zero = 1;
    for (size_t i = 0; i < len; i++)
        zero &= a[i] == 0;
    CHECK(zero, "fresh anonymous memory is zero");
    for (size_t i = 0; i < len; i++)
        a[i] = (unsigned char)(i * 7);

    /* private memory after fork: the child's writes stay in the child */
    uint32_t *shared = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED, "mmap anonymous shared");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        a[0] = 0xAA;
        shared[0] = 0x12345678;
        shared[1] = a[100];
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(shared[0] == 0x12345678, "MAP_SHARED write of the child seen (%#x)", shared[0]);
    CHECK(shared[1] == (unsigned char)(100 * 7), "child saw the parent's private data");
    CHECK(a[0] == 0, "MAP_PRIVATE write of the child not seen (%#x)", a[0]);

    /* a file mapping */
    const char *path = "/tmp/rootfs-mmap-test";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        path = "rootfs-mmap-test";
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    }
    REQUIRE(fd >= 0, "create %s", path);
    char text[8192];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = 'a' + i % 26;
    CHECK(write(fd, text, sizeof text) == (ssize_t)sizeof text, "write the file");
    char *f = mmap(NULL, sizeof text, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(f != MAP_FAILED, "mmap the file");
    CHECK(memcmp(f, text, sizeof text) == 0, "file mapping holds the file");
    f[4096] = 'Z';
    CHECK(msync(f, sizeof text, MS_SYNC) == 0, "msync");
    char c = 0;
    CHECK(pread(fd, &c, 1, 4096) == 1 && c == 'Z', "write through the mapping reaches the file ('%c')", c);
    munmap(f, sizeof text);
    close(fd);
    unlink(path);

    /* mprotect and munmap: faults caught */
    struct sigaction sa = { 0 };
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    CHECK(!faults((char *)a + page, 1), "write to a read-write page");
    CHECK(mprotect(a, page, PROT_READ) == 0, "mprotect read-only");
    CHECK(!faults((char *)a, 0), "read a read-only page");
    CHECK(faults((char *)a, 1), "write to a read-only page faults");
    CHECK(munmap(a + 32 * page, page) == 0, "munmap one page");
    CHECK(faults((char *)a + 32 * page, 0), "read of an unmapped page faults");
    CHECK(segv == 2, "SIGSEGV twice (%d)", (int)segv);

    /* mremap: grow (may move), contents kept */
    unsigned char *b = mremap(a + 40 * page, 8 * page, 64 * page, MREMAP_MAYMOVE);
    REQUIRE(b != MAP_FAILED, "mremap grow");
    CHECK(b[5] == (unsigned char)((40 * page + 5) * 7), "mremap keeps the contents");
    b[63 * page] = 1;

    /* brk, as the raw system call (musl's sbrk refuses to grow) */
    char *cur = (char *)syscall(SYS_brk, 0);
    char *end = (char *)syscall(SYS_brk, cur + 65536);
    CHECK(end == cur + 65536, "brk grows the heap by 64 KiB");
    if (end == cur + 65536)
        memset(cur, 0x5a, 65536);
    printf("mmap: anonymous, shared across fork, file, mprotect, munmap, mremap, brk\n");
    return test_done();
}
