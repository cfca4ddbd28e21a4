package recordstore

import (
	"errors"

	"github.com/cloudcall/cloudcall/shared/config"
)

// NoSQLTag is the build tag that leaves the PostgreSQL and MySQL clients
// out of a binary: `cloudcall package` sets it for a charge whose records
// live in Redis.
const NoSQLTag = "cloudcall_nosql"

// ErrNoSQLClient answers a SQL records URL in a binary built without the
// SQL clients. It names the fix: nothing is charged until it is rebuilt.
var ErrNoSQLClient = errors.New("this binary was packaged for a Redis records store, without the PostgreSQL and MySQL clients " +
	"(cloudcall package --records redis, or the store was a redis:// URL when it was packaged): package it again with " +
	VarStore + " set to this URL in the environment, or with --records all")

// Packaging says whether a binary packaged now must link the SQL clients,
// from the settings the deployment will run with (env is the packaging
// environment, which s.yaml and template.yaml deploy from), and why. Only a
// Redis records store lets them go: an unset or unreadable setting keeps
// them, so a binary never lacks the client its store needs.
func Packaging(env *config.Env) (sql bool, why string) {
	url, from, err := setting(env)
	switch {
	case errors.Is(err, ErrMissing):
		return true, VarStore + " is not set here"
	case err != nil:
		return true, err.Error()
	case IsRedis(url):
		return false, from + " is a Redis URL"
	case IsSQL(url):
		return true, from + " is a SQL URL"
	}
	// Never quoted: a malformed URL may still carry a password.
	return true, from + " is not a redis://, postgres:// or mysql:// URL"
}
