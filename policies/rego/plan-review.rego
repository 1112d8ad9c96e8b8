# Guard rails on the plan itself (input.plan is present only at plan and apply time).
package keyward.plan

import rego.v1

# Granting a privileged role is worth a second look in the pull request.
warn contains {
	"msg": sprintf("the plan grants privileged role %s to %s on %s", [change.after.role, change.subject, change.address]),
	"address": change.address,
} if {
	some change in input.plan.changes
	change.action == "assign"
	input.desired.roles[change.after.role].privileged
}

# Deleting accounts cannot be undone on every target: ask for a separate, reviewed plan.
deny contains {
	"msg": sprintf("the plan deletes %s together with %d other changes; delete accounts in a plan of their own", [change.address, count(input.plan.changes) - 1]),
	"address": change.address,
} if {
	some change in input.plan.changes
	change.action == "delete"
	count(input.plan.changes) > 1
}

# Large plans usually mean something went wrong (a renamed target, a broken scope).
warn contains sprintf("the plan disables %d accounts", [n]) if {
	n := count([c | some c in input.plan.changes; c.action == "disable"])
	n > 5
}
