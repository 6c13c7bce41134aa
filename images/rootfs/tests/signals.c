/* signals: handlers with sigaction (SA_SIGINFO), kill/raise, blocking and
 * pending sets, sigsuspend, a SIGALRM from setitimer, SIGCHLD, and a child
 * killed by SIGTERM as waitpid sees it. */
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static volatile sig_atomic_t usr1, usr2, alrm, chld;
static volatile sig_atomic_t usr1_pid;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig == SIGUSR1) {
        usr1++;
        usr1_pid = si->si_pid;
    }
}
static void on_usr2(int sig) { (void)sig; usr2++; }
static void on_alrm(int sig) { (void)sig; alrm++; }
static void on_chld(int sig) { (void)sig; chld++; }

/* waitpid, again when a signal handler interrupted it (EINTR) */
static pid_t wait_for(pid_t pid, int *status)
{
    pid_t r;
    while ((r = waitpid(pid, status, 0)) < 0 && errno == EINTR)
        ;
    return r;
}

int main(void)
{
    test_name = "signals";
    struct sigaction sa = { 0 };
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction SIGUSR1");
    signal(SIGUSR2, on_usr2);
    signal(SIGALRM, on_alrm);
    signal(SIGCHLD, on_chld);

    CHECK(raise(SIGUSR1) == 0 && usr1 == 1, "raise(SIGUSR1) runs the handler (%d)", (int)usr1);
    CHECK(kill(getpid(), SIGUSR1) == 0 && usr1 == 2, "kill(self, SIGUSR1) runs the handler (%d)", (int)usr1);
    CHECK(usr1_pid == getpid(), "si_pid %d == %d", (int)usr1_pid, (int)getpid());

    /* blocked: pending, delivered once on unblock */
    sigset_t set, old, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &set, &old) == 0, "sigprocmask block");
    kill(getpid(), SIGUSR2);
    kill(getpid(), SIGUSR2);
    CHECK(usr2 == 0, "blocked SIGUSR2 not delivered");
    CHECK(sigpending(&pend) == 0 && sigismember(&pend, SIGUSR2), "SIGUSR2 pending");
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0, "sigprocmask unblock");
    CHECK(usr2 == 1, "SIGUSR2 delivered once on unblock (%d)", (int)usr2);

    /* setitimer + sigsuspend */
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, &old);
    struct itimerval it = { { 0, 0 }, { 0, 20000 } };
    REQUIRE(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    sigset_t wait_set = old;
    sigdelset(&wait_set, SIGALRM);
    while (!alrm)
        sigsuspend(&wait_set);
    sigprocmask(SIG_SETMASK, &old, NULL);
    CHECK(alrm == 1, "SIGALRM once (%d)", (int)alrm);

    /* a child that signals its parent, then one killed by SIGTERM */
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        kill(getppid(), SIGUSR1);
        _exit(7);
    }
    int status = -1;
    CHECK(wait_for(pid, &status) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7,
          "child exit 7 (status %#x)", status);
    CHECK(usr1 == 3, "SIGUSR1 from the child (%d)", (int)usr1);
    CHECK(usr1_pid == pid, "si_pid of the child's signal %d == %d", (int)usr1_pid, (int)pid);

    pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        for (;;)
            pause();
    }
    usleep(10000);
    CHECK(kill(pid, SIGTERM) == 0, "kill child SIGTERM");
    CHECK(wait_for(pid, &status) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
          "child killed by SIGTERM (status %#x)", status);
    CHECK(chld >= 1, "SIGCHLD delivered (%d)", (int)chld);
    printf("signals: SA_SIGINFO, kill, raise, pending, itimer, sigsuspend, SIGCHLD, SIGTERM\n");
    return test_done();
}
