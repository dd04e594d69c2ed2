// Package difftest holds the differential tests of guestvm against QEMU 7.2
// (qemu-system-riscv64 -machine virt -bios none -icount shift=0): random
// programs from tools/rvgen and the prebuilt guests in tools/guests/bin run
// under both, and their UART output must match byte for byte.
//
//	go test ./guestvm/difftest/                          # 40 programs x 100 sequences
//	go test ./guestvm/difftest/ -short                   # 8 programs
//	go test ./guestvm/difftest/ -difftest.seed=5000-5099 # add seeds
//	go test ./guestvm/difftest/ -run Random/seed=17 -v   # one program
//
// The tests skip when riscv64-unknown-elf-gcc or qemu-system-riscv64 is
// missing, and fail instead when CI=true. On a mismatch the program (.S,
// .elf) and both outputs are kept in $FTBOX_DIFFTEST_KEEP (default
// $TMPDIR/ftbox-difftest) for reproduction with tools/rvgen/cmd/rvgen.
package difftest
