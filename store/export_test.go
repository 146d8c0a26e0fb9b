package store

// SetCopyBatch sets Copy's batch sizes for a test; the returned function
// restores them.
func SetCopyBatch(batch, perStmt int) (restore func()) {
	b, p := copyBatch, copyPerStmt
	copyBatch, copyPerStmt = batch, perStmt
	return func() { copyBatch, copyPerStmt = b, p }
}

var QuoteIdent = quoteIdent

// SetFeedHook makes fn run between the numbering of each status change and
// the commit of its transaction; the returned function removes it.
func SetFeedHook(fn func()) (restore func()) {
	feedTestHook = fn
	return func() { feedTestHook = nil }
}

// SetPruneChunk sets PruneFeed's rows per transaction for a test.
func SetPruneChunk(n int64) (restore func()) {
	old := pruneChunk
	pruneChunk = n
	return func() { pruneChunk = old }
}
