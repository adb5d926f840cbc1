package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// stderrOnTerminal runs cmd with its stderr on a new pseudo-terminal and
// returns what it wrote there.
func stderrOnTerminal(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	ptmx, pts := openPTY(t, 80)
	// The terminal would turn \n into \r\n; show bytes as written.
	if tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS); err == nil {
		tio.Oflag &^= unix.OPOST
		unix.IoctlSetTermios(int(pts.Fd()), unix.TCSETS, tio)
	}
	cmd.Stderr = pts
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once every pts is closed
		read <- string(b)
	}()
	err := cmd.Run()
	pts.Close()
	out := <-read
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return out
}

// openPTY opens a pseudo-terminal of cols columns and returns its
// controller and its terminal side (what a program's stdout is in a
// terminal window).
func openPTY(t *testing.T, cols uint16) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	// unlockpt and ptsname, as pty(7) describes them.
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: cols}); err != nil {
		t.Fatal(err)
	}
	return ctl, tty
}
