# Directory hygiene: every active person has the attributes that HR and the access reviews
# rely on.
package keyward.people

import rego.v1

required := ["displayName", "department", "employeeId"]

warn contains {
	"msg": sprintf("user %s has no %s", [name, field]),
	"address": sprintf("user.%s", [name]),
} if {
	some name, user in input.desired.users
	user.status == "active"
	some field in required
	not user[field]
}

# Two people with one employee id is almost always a copy-and-paste mistake.
by_employee_id[id] contains name if {
	some name, user in input.desired.users
	id := user.employeeId
}

deny contains {
	"msg": sprintf("users %s share employeeId %s", [concat(", ", names), id]),
	"address": sprintf("user.%s", [names[1]]),
	"path": ["employeeId"],
} if {
	some id, set in by_employee_id
	count(set) > 1
	names := sort(set)
}
