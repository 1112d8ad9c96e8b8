"""A user adapter that carries what an application built on django-scim2 typically adds to
the stock one (``django_scim.adapters.SCIMUser``): a stored displayName, ``title``, and the
enterprise extension's department, employeeNumber and manager, in resources, in POST and PUT
bodies, and in PATCH operations with or without a path. Anything else stays as django-scim2
has it (an unknown PATCH path is 501 Not Implemented)."""

from django_scim import exceptions
from django_scim.adapters import SCIMUser
from django_scim.utils import get_user_model

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"

_TEXT = {
    ("displayName", None, None): "display_name",
    ("title", None, None): "title",
    ("department", None, ENTERPRISE): "department",
    ("employeeNumber", None, ENTERPRISE): "employee_number",
    ("userName", None, None): "username",
    ("name", "givenName", None): "first_name",
    ("givenName", None, None): "first_name",
    ("name", "familyName", None): "last_name",
    ("familyName", None, None): "last_name",
}


def _key(path):
    """(attr, sub-attribute, schema URI) of a parsed path, the core schema URI dropped."""
    attr, sub, uri = tuple(path)
    return (attr, sub, None if uri in (None, CORE) else uri)


class EnterpriseUser(SCIMUser):
    @property
    def display_name(self):
        return self.obj.display_name or super().display_name

    def to_dict(self):
        d = super().to_dict()
        d["displayName"] = self.display_name
        if self.obj.title:
            d["title"] = self.obj.title
        ext = {}
        if self.obj.department:
            ext["department"] = self.obj.department
        if self.obj.employee_number:
            ext["employeeNumber"] = self.obj.employee_number
        if self.obj.manager_id is not None:
            ext["manager"] = {"value": str(self.obj.manager.scim_id)}
        if ext:
            d["schemas"] = d["schemas"] + [ENTERPRISE]
            d[ENTERPRISE] = ext
        return d

    def from_dict(self, d):
        super().from_dict(d)
        self.obj.display_name = d.get("displayName") or ""
        self.obj.title = d.get("title") or ""
        ext = d.get(ENTERPRISE) or {}
        self.obj.department = ext.get("department") or ""
        self.obj.employee_number = ext.get("employeeNumber") or ""
        self._set_manager(ext.get("manager"))

    def _set_manager(self, value):
        ref = value.get("value") if isinstance(value, dict) else value
        if not ref:
            self.obj.manager = None
            return
        try:
            self.obj.manager = get_user_model().objects.get(scim_id=str(ref))
        except get_user_model().DoesNotExist:
            raise exceptions.BadRequestError(f"manager {ref} does not exist")

    def _set(self, key, value):
        if key in _TEXT:
            setattr(self.obj, _TEXT[key], value or "")
            if key == ("userName", None, None):
                self.obj.scim_username = self.obj.username
        elif key == ("name", None, None) and isinstance(value, dict):
            for sub, v in value.items():
                self._set(("name", sub, None), v)
        elif key == ("emails", None, None):
            if value:
                self.parse_emails(value)
            else:
                self.obj.email = ""
        elif key == ("active", None, None):
            self.obj.is_active = bool(value)
        elif key == ("manager", None, ENTERPRISE):
            self._set_manager(value)
        elif key == ("User", None, "urn:ietf:params:scim:schemas:extension:enterprise:2.0") and isinstance(
            value, dict
        ):
            for sub, v in value.items():
                self._set((sub, None, ENTERPRISE), v)
        else:
            raise exceptions.NotImplementedError("Not Implemented")

    def handle_replace(self, path, value, operation):
        if path is None:
            raise exceptions.BadRequestError("replace needs a path or an object value")
        self._set(_key(path.first_path), value)
        self.save()

    def handle_add(self, path, value, operation):
        # For a single-valued attribute, add is replace (RFC 7644 section 3.5.2.1).
        self.handle_replace(path, value, operation)

    def handle_remove(self, path, value, operation):
        self._set(_key(path.first_path), None)
        self.save()

    @classmethod
    def resource_type_dict(cls, request=None):
        # An application that keeps the enterprise extension announces it on its User
        # resource type (RFC 7643 section 6); django-scim2's stock one lists none.
        d = super().resource_type_dict(request)
        d["schemaExtensions"] = [{"schema": ENTERPRISE, "required": False}]
        return d
