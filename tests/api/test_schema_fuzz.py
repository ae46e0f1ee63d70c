"""Property-based fuzz of the whole OpenAPI schema (schemathesis) through a real server: no answer is a 5xx,
and every status answered is documented for its operation. A few examples per operation keep it to a couple
of minutes; the admin token reaches every operation."""

import pytest
import schemathesis
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from core.roles import Role

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
# Valid and invalid data alike, NUL characters included: a wrong input must be a documented 4xx.
schema.config.generation.update(modes=["positive", "negative"], allow_x00=True)


@pytest.fixture
def admin_token(transactional_db):
    from django.contrib.auth.models import Group, User

    user, _ = User.objects.get_or_create(username="fuzz-admin", is_staff=True, is_superuser=True)
    user.groups.add(Group.objects.get_or_create(name=Role.ADMIN)[0])
    return Token.objects.get_or_create(user=user)[0].key


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error_and_no_undocumented_status(case, live_server, admin_token):
    with override_settings(SPOTCHECK_CLASSIFY_API_DEADLINE=2.0, SPOTCHECK_FETCH_DEADLINE=1.0):
        case.call_and_validate(
            base_url=f"{live_server.url}/api/v1",
            headers={"Authorization": f"Token {admin_token}"},
            checks=[not_a_server_error, status_code_conformance],
            timeout=30,
        )
