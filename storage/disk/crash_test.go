package disk

// runCrashChild runs the crash test's child process when selected by the
// environment; it reports whether it did.
func runCrashChild() bool { return false }
