"""riscv64 hart adapter on Unicorn."""
