/* forkexec: fork, execve (of this program and of busybox), exit statuses,
 * vfork, posix_spawn, ENOENT for a missing program, argv and environment
 * passed through exec, and 50 fork+exec rounds. */
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

extern char **environ;

static int run(const char *self, const char *arg, int *status)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = { (char *)self, "child", (char *)arg, NULL };
        char *envp[] = { "ROOTFS_TEST=forkexec", NULL };
        execve(self, argv, envp);
        _exit(127);
    }
    return waitpid(pid, status, 0) == pid ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "child")) {
        const char *env = getenv("ROOTFS_TEST");
        if (!env || strcmp(env, "forkexec"))
            return 99;
        return atoi(argv[2]);
    }
    test_name = "forkexec";
    const char *self = argv[0];
    REQUIRE(self[0] == '/', "run by absolute path (argv[0] %s)", self);

    int status;
    CHECK(run(self, "0", &status) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exec self, exit 0 (%#x)", status);
    CHECK(run(self, "42", &status) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 42, "exec self, exit 42 (%#x)", status);
    for (int i = 0; i < 50; i++) {
        char a[8];
        snprintf(a, sizeof a, "%d", i);
        if (run(self, a, &status) != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != i) {
            CHECK(0, "fork+exec round %d (%#x)", i, status);
            break;
        }
    }

    pid_t pid = vfork();
    if (pid == 0) {
        execl("/bin/busybox", "busybox", "true", (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "vfork + exec busybox true (%#x)", status);

    char *sp_argv[] = { "busybox", "sh", "-c", "exit 5", NULL };
    CHECK(posix_spawn(&pid, "/bin/busybox", NULL, NULL, sp_argv, environ) == 0 &&
          waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 5,
          "posix_spawn busybox sh -c 'exit 5' (%#x)", status);

    char *none[] = { "/nonexistent", NULL };
    errno = 0;
    CHECK(execve("/nonexistent", none, environ) == -1 && errno == ENOENT, "execve of a missing file gives ENOENT");

    pid = fork();
    if (pid == 0)
        _exit(getppid() > 0 ? 3 : 4);
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WEXITSTATUS(status) == 3, "child sees its parent");
    errno = 0;
    CHECK(waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD, "no children left: ECHILD");
    printf("forkexec: 52 fork+exec of self, vfork, posix_spawn, ENOENT, ECHILD\n");
    return test_done();
}
