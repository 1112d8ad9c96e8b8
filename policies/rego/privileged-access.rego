# Every assignment of a privileged role carries a change ticket and a reason, so an auditor can
# trace who approved it. Runs on `keyward validate` and `keyward plan`.
package keyward.privileged_access

import rego.v1

privileged contains name if {
	some name, role in input.desired.roles
	role.privileged
}

# A grant is a role name, or {role, expires, reason, ticket}.
deny contains {
	"msg": sprintf("user %s holds privileged role %s without a change ticket", [name, grant.role]),
	"address": sprintf("user.%s", [name]),
	"path": ["roles", i],
} if {
	some name, user in input.desired.users
	some i, grant in user.roles
	privileged[grant.role]
	not grant.ticket
}

# A bare role name has no ticket either (the built-in rule hygiene.privileged-without-expiry
# also reports it, for its missing expiry).
deny contains {
	"msg": sprintf("user %s holds privileged role %s without a change ticket", [name, grant]),
	"address": sprintf("user.%s", [name]),
	"path": ["roles", i],
} if {
	some name, user in input.desired.users
	some i, grant in user.roles
	is_string(grant)
	privileged[grant]
}

deny contains {
	"msg": sprintf("service account %s holds privileged role %s without a change ticket", [name, grant.role]),
	"address": sprintf("service-account.%s", [name]),
	"path": ["roles", i],
} if {
	some name, account in input.desired.serviceAccounts
	some i, grant in account.roles
	privileged[grant.role]
	not grant.ticket
}

deny contains {
	"msg": sprintf("service account %s holds privileged role %s without a change ticket", [name, grant]),
	"address": sprintf("service-account.%s", [name]),
	"path": ["roles", i],
} if {
	some name, account in input.desired.serviceAccounts
	some i, grant in account.roles
	is_string(grant)
	privileged[grant]
}

warn contains {
	"msg": sprintf("user %s holds privileged role %s without a reason", [name, grant.role]),
	"address": sprintf("user.%s", [name]),
	"path": ["roles", i],
} if {
	some name, user in input.desired.users
	some i, grant in user.roles
	privileged[grant.role]
	not grant.reason
}
