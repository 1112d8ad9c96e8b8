from django.urls import include, path

# Mounted at /v2/, as scim2-server is, so tests address both servers alike.
urlpatterns = [path("v2/", include("django_scim.urls", namespace="scim"))]
