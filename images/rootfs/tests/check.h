/*
 * Shared by the rootfs test programs: each prints one line per failed check
 * ("FAIL NAME: what ... failed") and, at the end, "PASS NAME" (exit 0) or
 * "FAIL NAME: N checks failed" (exit 1). The word "failed" is one of
 * zcore-tests' (and `emu test`'s) default failure patterns, so a list runner
 * that only reads the console judges these programs right too.
 */
#ifndef ROOTFS_CHECK_H
#define ROOTFS_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *test_name = "?";
static int test_failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            int e_ = errno;                                                  \
            printf("FAIL %s: ", test_name);                                  \
            printf(__VA_ARGS__);                                             \
            printf(" failed (%s:%d, errno %d %s)\n", __FILE__, __LINE__, e_, \
                   strerror(e_));                                            \
            fflush(stdout);                                                  \
            test_failures++;                                                 \
        }                                                                    \
    } while (0)

/* Fatal: the rest of the test cannot run (cond is evaluated once). */
#define REQUIRE(cond, ...)                                                   \
    do {                                                                     \
        int ok_ = !!(cond);                                                  \
        CHECK(ok_, __VA_ARGS__);                                             \
        if (!ok_)                                                            \
            return test_done();                                              \
    } while (0)

static int test_done(void)
{
    if (test_failures) {
        printf("FAIL %s: %d checks failed\n", test_name, test_failures);
        fflush(stdout);
        return 1;
    }
    printf("PASS %s\n", test_name);
    fflush(stdout);
    return 0;
}

#endif
