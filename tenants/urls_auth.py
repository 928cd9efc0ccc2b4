"""/api/v1/auth/: accounts and tokens."""

from django.urls import path

from . import views_api as v

app_name = "auth"

urlpatterns = [
    path("register", v.RegisterView.as_view(), name="register"),
    path("login", v.LoginView.as_view(), name="login"),
    path("refresh", v.RefreshView.as_view(), name="refresh"),
    path("logout", v.LogoutView.as_view(), name="logout"),
    path("me", v.MeView.as_view(), name="me"),
    path("accept-invite", v.AcceptInviteView.as_view(), name="accept-invite"),
]
