/* Console: the ns16550a UART. Output is polled (either hart may write, under a lock);
 * input arrives by PLIC interrupt on hart 0 and waits in a ring buffer for read(). */
#include "kernel.h"

#define UART_RBR 0   /* receive buffer (read) */
#define UART_THR 0   /* transmit holding (write) */
#define UART_IER 1   /* interrupt enable */
#define UART_MCR 4   /* modem control */
#define UART_LSR 5   /* line status */
#define LSR_DR   0x01
#define LSR_THRE 0x20

static volatile uint8_t *uart;
static spinlock_t out_lock, in_lock;
static char inbuf[256];
static volatile unsigned in_head, in_tail;   /* head: next to read, tail: next to write */

void console_init(uint64_t uart_base) { uart = (volatile uint8_t *)uart_base; }

void console_enable_rx(void)
{
    uart[UART_MCR] = 0x0b;     /* DTR | RTS | OUT2 (OUT2 gates the IRQ line on a real 16550) */
    uart[UART_IER] = 0x01;     /* interrupt when received data is available */
}

static void putc_raw(char c)
{
    if (!uart) {
        sbi_putchar(c);
        return;
    }
    while (!(uart[UART_LSR] & LSR_THRE))
        ;
    uart[UART_THR] = (uint8_t)c;
}

void console_write(const char *s, size_t n)
{
    lock(&out_lock);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            putc_raw('\r');
        putc_raw(s[i]);
    }
    unlock(&out_lock);
}

/* Flow control: when the buffer is full, input stays in the UART (whose FIFO holds back
 * the line) and its interrupt is masked until read() has taken half the buffer, so
 * typed-ahead or pasted input is never dropped. */
static int rx_throttled;

void console_rx_irq(void)
{
    lock(&in_lock);
    while (uart[UART_LSR] & LSR_DR) {
        if (in_tail - in_head == sizeof inbuf) {
            uart[UART_IER] = 0;
            rx_throttled = 1;
            break;
        }
        inbuf[in_tail++ % sizeof inbuf] = (char)uart[UART_RBR];
    }
    unlock(&in_lock);
}

int console_has_input(void) { return in_tail != in_head; }

int console_read(char *dst, int max)
{
    int n = 0;
    lock(&in_lock);
    while (n < max && in_head != in_tail)
        dst[n++] = inbuf[in_head++ % sizeof inbuf];
    if (rx_throttled && in_tail - in_head <= sizeof inbuf / 2) {
        rx_throttled = 0;
        uart[UART_IER] = 0x01;  /* input is waiting: the interrupt (to hart 0) comes at once */
    }
    unlock(&in_lock);
    return n;
}

void kprintf(const char *f, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, f);
    int n = vfmt(buf, sizeof buf, f, ap);
    va_end(ap);
    console_write(buf, (size_t)n);
}
