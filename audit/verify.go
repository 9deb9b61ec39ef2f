package audit

import (
	"context"
	"fmt"

	"github.com/bedside-health/bedside/store"
)

// Events reads the audit trail; store.Store satisfies it.
type Events interface {
	AuditEvents(ctx context.Context, q store.AuditQuery) (page []store.AuditEvent, total int, err error)
}

// verifyPage is how many events VerifyStore reads at a time.
const verifyPage = 1000

// VerifyStore walks the whole chain of st, from event 1, in pages, and
// returns nil if it is unbroken, a *BreakError at the first break, or the
// store's error.
func VerifyStore(ctx context.Context, st Events) error {
	_, err := VerifiedUpTo(ctx, st)
	return err
}

// VerifiedUpTo is VerifyStore that also says how far the chain verified:
// the Seq of the last event of an unbroken chain (0 if there is none), or
// of the last good event before the break.
func VerifiedUpTo(ctx context.Context, st Events) (int64, error) {
	c := chain{next: 1}
	for {
		page, _, err := st.AuditEvents(ctx, store.AuditQuery{AfterSeq: c.next - 1, Limit: verifyPage})
		if err != nil {
			return c.next - 1, fmt.Errorf("verify audit chain: %w", err)
		}
		for _, e := range page {
			if err := c.add(e); err != nil {
				return c.next - 1, err
			}
		}
		if len(page) == 0 { // not len < verifyPage: a store may cap pages lower
			return c.next - 1, nil
		}
	}
}
