"""Login is required everywhere: pages redirect to the login page, the API answers 401/403."""

import pytest
from django.urls import reverse


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/admin/", "/datasets/", "/label/", "/sitemaps/"])
def test_anonymous_page_request_redirects_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login")) or response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_anonymous_schema_request_is_refused(api_client):
    assert api_client.get("/api/schema/").status_code in (401, 403)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/me/", "/api/v1/classify/", "/api/v1/campaigns/"])
def test_anonymous_api_request_is_refused_with_json_error(api_client, path):
    response = api_client.get(path, HTTP_ACCEPT="application/json")
    assert response.status_code in (401, 403)
    body = response.json()
    assert body["error"]["code"] in {"not_authenticated", "authentication_failed"}
    assert body["error"]["message"]


@pytest.mark.django_db
def test_login_page_is_served_to_anonymous_users(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="viewport"' in response.content


@pytest.mark.django_db
def test_demo_style_login_then_home_shows_the_role_sections(client, reviewer):
    assert client.login(username="rev", password="pw-rev")
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/sitemaps/"' in html
    assert 'href="/datasets/"' not in html  # admins only


@pytest.mark.django_db
def test_navigation_shows_each_role_only_its_sections(client, labeler, advertiser_user, admin_user):
    expectations = {
        labeler: ({"/label/"}, {"/sitemaps/", "/datasets/", "/admin/"}),
        advertiser_user: ({"/sitemaps/"}, {"/label/", "/datasets/", "/admin/"}),
        admin_user: ({"/label/", "/sitemaps/", "/datasets/", "/admin/"}, set()),
    }
    for user, (shown, hidden) in expectations.items():
        client.force_login(user)
        html = client.get("/").content.decode()
        for url in shown:
            assert f'href="{url}"' in html, (user.username, url)
        for url in hidden:
            assert f'href="{url}"' not in html, (user.username, url)
        client.logout()


@pytest.mark.django_db
def test_token_authentication_is_accepted(api_client, reviewer):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=reviewer)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api_client.get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_authenticated_api_caller_sees_its_roles(api_as, reviewer):
    assert api_as(reviewer).get("/api/v1/me/").json() == {"username": "rev", "roles": ["reviewer"]}
