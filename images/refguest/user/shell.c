/* shell: the interactive console. Runs programs by name (spawn + wait); a trailing '&'
 * runs one in the background. Built-ins: help, wait, poweroff. */
#include "ulib.h"

static const char help[] =
    "commands:\n"
    "  hello          print a greeting\n"
    "  fault          store to address 0 (the kernel kills it)\n"
    "  echo [WORDS]   print WORDS, or read a line from the console and print it back\n"
    "  getcpu         show which hart executed the system calls\n"
    "  bench [N]      time N null system calls (default 100)\n"
    "  sleep MS       sleep MS milliseconds\n"
    "  spin [MS]      keep the CPU busy for MS milliseconds (default 2000)\n"
    "  ps             list tasks\n"
    "  CMD &          run CMD in the background\n"
    "  wait           wait for the background tasks\n"
    "  help           this text\n"
    "  poweroff       shut the machine down\n";

int main(int argc, char **argv)
{
    char line[128];
    (void)argc, (void)argv;
    for (;;) {
        write(1, "ref> ", 5);
        int n = readline(line, sizeof line);
        while (n && line[n - 1] == ' ')
            line[--n] = 0;
        int bg = n && line[n - 1] == '&';
        if (bg) {
            line[--n] = 0;
            while (n && line[n - 1] == ' ')
                line[--n] = 0;
        }
        char *cmd = line;
        while (*cmd == ' ')
            cmd++;
        if (!*cmd)
            continue;
        if (!strcmp(cmd, "help")) {
            write(1, help, sizeof help - 1);
        } else if (!strcmp(cmd, "poweroff")) {
            poweroff();
        } else if (!strcmp(cmd, "wait")) {
            int status;
            long pid;
            while ((pid = wait(-1, &status)) > 0)
                printf("[%ld] done, exit %d\n", pid, status);
        } else {
            long pid = spawn(cmd);
            int status = 0;
            if (pid < 0)
                printf("ref: %s: unknown command (try help)\n", cmd);
            else if (bg)
                printf("[%ld] %s\n", pid, cmd);
            else if (wait(pid, &status) == pid && status != 0)
                printf("[%ld] exit %d\n", pid, status);
        }
    }
}
