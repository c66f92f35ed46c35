// Package test holds retropub's scenario and end-to-end tests; the fake
// Confluence they run against lives in test/confluencetest.
package test
