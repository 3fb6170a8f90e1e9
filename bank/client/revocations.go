package client

import (
	"context"
	"net/http"

	"github.com/otpcash/otpcash/otp"
)

// Revocations fetches the bank's signed list of revoked one-time keys. The
// caller verifies it against its pinned catalogue.
func (c *Client) Revocations(ctx context.Context) (*otp.Revocations, error) {
	var r otp.Revocations
	if err := c.do(ctx, http.MethodGet, "/v1/revocations", "", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
