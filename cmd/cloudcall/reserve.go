package main

import (
	"fmt"
	"net"
	"sync"
	"syscall"
)

// reserve binds addr without listening on it: the port is taken (a second
// `cloudcall local` on it fails at once, not after minutes of building),
// while a connection to it is refused at once (no listen backlog holds a
// call until the functions are built). release frees it for net.Listen;
// it may be called more than once.
// No SO_REUSEADDR: Linux lets two sockets share a port that is not
// listening only when both set it, and net.Listen does.
func reserve(addr string) (release func(), err error) {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	fam, sa := syscall.AF_INET, syscall.Sockaddr(nil)
	if ip4 := a.IP.To4(); ip4 != nil || a.IP == nil {
		s4 := &syscall.SockaddrInet4{Port: a.Port}
		copy(s4.Addr[:], ip4)
		sa = s4
	} else {
		s6 := &syscall.SockaddrInet6{Port: a.Port}
		copy(s6.Addr[:], a.IP.To16())
		fam, sa = syscall.AF_INET6, s6
	}
	fd, err := syscall.Socket(fam, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reserve %s: %w", addr, err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("reserve %s: %w", addr, err)
	}
	// Once: a second close could hit whatever reused the descriptor
	// (the front door's listener, opened right after the release).
	var once sync.Once
	return func() { once.Do(func() { _ = syscall.Close(fd) }) }, nil
}

// reserveFront reserves the front door's port for the build, as far as it
// can. It runs after net.Listen took the port, and net.Listen (SO_REUSEADDR)
// takes a port whose last connections are in TIME_WAIT, which reserve's bind
// does not: right after a run that closed connections (an open console tab,
// a keep-alive client), a restart was refused for up to a minute. Another
// run building on the port would have failed that net.Listen (its bind has
// no SO_REUSEADDR), so a failure here is that TIME_WAIT: the build goes on
// unreserved, as it did before reservations.
func reserveFront(addr string) (release func()) {
	release, err := reserve(addr)
	if err != nil {
		return func() {}
	}
	return release
}
