"""Who may read interests: service clients with a token, or staff signed in to the site."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class IsServiceClientOrStaff(BasePermission):
    message = "A service token (Authorization: Token <key>, or Bearer <key>) or a staff session is required."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        # token auth sets request.auth to the token; a session (request.auth None) must be staff
        return request.auth is not None or bool(user.is_staff)
