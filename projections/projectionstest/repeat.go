package projectionstest

import "sync"

// Repeat calls f over and over, on a goroutine of its own, until stop is
// called or f fails: load that goes on while a test measures or rebuilds.
// stop waits for the call under way and answers f's error, if any; calling
// it again answers the same.
func Repeat(f func() error) (stop func() error) {
	quit := make(chan struct{})
	var err error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-quit:
				return
			default:
			}
			if err = f(); err != nil {
				return
			}
		}
	})
	return sync.OnceValue(func() error {
		close(quit)
		wg.Wait()
		return err
	})
}
