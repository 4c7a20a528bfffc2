"""/ queries the database, like Status-Page's public page; /slow/ takes two seconds."""

from django.urls import path

from fakeapp.views import home, slow

urlpatterns = [path("", home), path("slow/", slow)]
