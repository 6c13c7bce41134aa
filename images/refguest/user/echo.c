/* echo [WORDS]: print WORDS; with none, read a line from the console (read()) and
 * print it back. */
#include "ulib.h"

int main(int argc, char **argv)
{
    char line[128];
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
        return 0;
    }
    printf("echo: type a line\n");
    readline(line, sizeof line);
    printf("echo: you typed \"%s\"\n", line);
    return 0;
}
