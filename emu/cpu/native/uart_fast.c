/* The 16550's two hot registers served natively: LSR reads and THR writes.
 *
 * A guest printing through the UART polls LSR for "transmitter empty" and writes THR,
 * byte by byte: two or three MMIO accesses per character, each a Python callback of a few
 * microseconds (18,000 for one `ls` on zCore).  While the model is in the state where these
 * accesses have no side effect but the byte itself (DLAB clear, the THR-empty interrupt
 * off), they are answered here: LSR from the model's receive flag, THR into a buffer the
 * host drains to the console in order (before any other console output, and between
 * rounds).  Everything else, and every access in any other state, goes to the Python model
 * (emu/devices/uart16550.py), which keeps `fast` and `rx_ready` up to date.
 */
#include <stddef.h>
#include <stdint.h>

typedef uint64_t (*mmio_read_fn)(void *uc, uint64_t offset, unsigned size, void *user_data);
typedef void (*mmio_write_fn)(void *uc, uint64_t offset, unsigned size, uint64_t value, void *user_data);

#define UART_THR 0
#define UART_LSR 5
#define LSR_IDLE 0x60   /* THR empty, transmitter empty */
#define UART_TX_MAX 4096

struct emu_uart_fast {
    uint64_t fast;       /* host: DLAB clear and the THR-empty interrupt disabled */
    uint64_t rx_ready;   /* host: received data waits in the model's FIFO */
    uint64_t accesses;   /* accesses served here (for --stats) */
    uint64_t *events;    /* the budget's host-event count: spin detection sees MMIO reads */
    mmio_read_fn read;   /* the Python model's callbacks */
    mmio_write_fn write;
    uint64_t tx_len;
    uint8_t tx[UART_TX_MAX];
};

uint64_t emu_uart_read(void *uc, uint64_t offset, unsigned size, void *user_data)
{
    struct emu_uart_fast *u = (struct emu_uart_fast *)user_data;
    if (offset == UART_LSR && u->fast) {
        u->accesses++;
        (*u->events)++;
        return LSR_IDLE | (u->rx_ready ? 1 : 0);
    }
    return u->read(uc, offset, size, NULL);
}

void emu_uart_write(void *uc, uint64_t offset, unsigned size, uint64_t value, void *user_data)
{
    struct emu_uart_fast *u = (struct emu_uart_fast *)user_data;
    if (offset == UART_THR && u->fast && u->tx_len < UART_TX_MAX) {
        u->accesses++;
        u->tx[u->tx_len++] = (uint8_t)value;
        return;
    }
    u->write(uc, offset, size, value, NULL);
}
