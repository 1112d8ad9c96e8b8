"""The directory's people and groups: Django's user with django-scim2's SCIM fields, and a
group with them too (Django's own ``auth.Group`` has no SCIM id)."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin


class Group(AbstractSCIMGroupMixin):
    name = models.CharField(max_length=150, unique=True)

    def __str__(self):
        return self.name


class User(AbstractSCIMUserMixin, AbstractUser):
    # The SCIM userName is Django's username; widened from 150 characters to the 254 that
    # django-scim2 gives scim_username.
    username = models.CharField(max_length=254, unique=True)
    # django-scim2's adapters read a user's groups as ``scim_groups`` and a group's members
    # as ``user_set``.
    scim_groups = models.ManyToManyField(Group, related_name="user_set", blank=True)
    # The fields of the enterprise adapter (directory.adapters.EnterpriseUser).
    display_name = models.CharField(max_length=254, blank=True, default="")
    title = models.CharField(max_length=254, blank=True, default="")
    department = models.CharField(max_length=254, blank=True, default="")
    employee_number = models.CharField(max_length=254, blank=True, default="")
    manager = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
