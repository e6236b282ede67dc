"""URLs of inference: the interests API and the staff registry API."""

from django.urls import path

from inference.rest import edge_views, registry_views, views

urlpatterns: list = [
    path("edge/model.json", edge_views.edge_model_file, name="edge-model"),
    path("api/v1/users/<str:user_id>/interests", views.UserInterestsView.as_view(), name="user-interests"),
    path("api/v1/interests/batch", views.InterestsBatchView.as_view(), name="interests-batch"),
    path("api/v1/models/", registry_views.ModelVersionListView.as_view(), name="models-list"),
    path(
        "api/v1/models/<str:version>/activate",
        registry_views.ModelVersionActivateView.as_view(),
        name="models-activate",
    ),
    path(
        "api/v1/models/<str:version>/retire",
        registry_views.ModelVersionRetireView.as_view(),
        name="models-retire",
    ),
    path(
        "api/v1/models/<str:algorithm>/rollback",
        registry_views.ModelRollbackView.as_view(),
        name="models-rollback",
    ),
]
