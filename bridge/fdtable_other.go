//go:build !linux

package bridge

func presizeFDTable() {}
