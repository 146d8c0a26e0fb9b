package store

// SetCopyBatch sets Copy's batch sizes for a test; the returned function
// restores them.
func SetCopyBatch(batch, perStmt int) (restore func()) {
	b, p := copyBatch, copyPerStmt
	copyBatch, copyPerStmt = batch, perStmt
	return func() { copyBatch, copyPerStmt = b, p }
}

var QuoteIdent = quoteIdent
