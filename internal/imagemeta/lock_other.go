//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package imagemeta

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// Fallback for platforms without flock (Solaris, AIX, Plan 9, wasip1...):
// the lock is the exclusive creation of the lock file, removed on unlock. A
// lock file older than staleLockAge is assumed to be left by a crashed
// process and broken.
const (
	lockPoll     = 20 * time.Millisecond
	staleLockAge = 10 * time.Minute
)

func lockRepo(path string) (unlock func(), err error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			fmt.Fprintln(f, strconv.Itoa(os.Getpid()))
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if fi, serr := os.Stat(path); serr == nil && time.Since(fi.ModTime()) > staleLockAge {
			os.Remove(path)
			continue
		}
		time.Sleep(lockPoll)
	}
}
