"""Tokens, their stored form, user names and ``Authorization: Bearer`` parsing (pure)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirelab import UsageError, WirelabError
from wirelab.auth import (
    TOKEN_PREFIX,
    AuthenticationError,
    InvalidCredentials,
    InvalidUserName,
    MissingCredentials,
    generate_token,
    hash_token,
    is_token_shaped,
    parse_bearer,
    token_matches,
    validate_user_name,
)


class TestTokens:
    def test_shape_prefix_and_entropy(self) -> None:
        tokens = {generate_token() for _ in range(200)}
        assert len(tokens) == 200
        for token in tokens:
            assert token.startswith(TOKEN_PREFIX)
            assert re.fullmatch(r"wl_[A-Za-z0-9_-]{43}", token)
            assert is_token_shaped(token)

    @pytest.mark.parametrize(
        "text",
        ["", "wl_", "wl_short", "xx_" + "a" * 43, "wl_" + "a" * 44, "wl_" + "a" * 42 + "=",
         "wl_" + "a" * 43 + "\n"],
    )  # fmt: skip
    def test_not_token_shaped(self, text: str) -> None:
        assert not is_token_shaped(text)

    def test_hash_is_hex_sha256(self) -> None:
        token = generate_token()
        assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
        assert re.fullmatch(r"[0-9a-f]{64}", hash_token(token))
        assert token not in hash_token(token)

    def test_token_matches(self) -> None:
        token = generate_token()
        stored = hash_token(token)
        assert token_matches(token, stored)
        assert not token_matches(generate_token(), stored)
        assert not token_matches(token, "")


class TestUserNames:
    @pytest.mark.parametrize("name", ["a", "alice", "bob-2", "build_bot", "x" * 32, "a-_9"])
    def test_valid(self, name: str) -> None:
        assert validate_user_name(name) == name

    @pytest.mark.parametrize(
        ("name", "problem"),
        [
            ("", "empty"),
            ("x" * 33, "longer than 32"),
            ("Alice", "start with a lowercase"),
            ("1abc", "start with a lowercase"),
            ("-abc", "start with a lowercase"),
            ("aLice", "may contain only"),
            ("al ice", "may contain only"),
            ("alice\n", "may contain only"),
            ("al.ice", "may contain only"),
            ("al/ice", "may contain only"),
            ("\u0430lice", "start with a lowercase"),  # Cyrillic a
            ("jos\u00e9", "may contain only"),
        ],
    )
    def test_invalid(self, name: str, problem: str) -> None:
        with pytest.raises(InvalidUserName, match=problem):
            validate_user_name(name)

    def test_error_is_a_usage_error(self) -> None:
        with pytest.raises(UsageError):
            validate_user_name("")

    @given(st.text(max_size=40))
    def test_accepted_names_follow_the_rule(self, name: str) -> None:
        try:
            validate_user_name(name)
        except InvalidUserName:
            assert not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name)
        else:
            assert name.isascii()
            assert 1 <= len(name) <= 32


class TestBearer:
    def test_valid(self) -> None:
        token = generate_token()
        assert parse_bearer(f"Bearer {token}") == token

    @pytest.mark.parametrize("template", ["bearer {}", "BEARER {}", "Bearer   {}", " Bearer {} "])
    def test_lenient_forms(self, template: str) -> None:
        token = generate_token()
        assert parse_bearer(template.format(token)) == token

    @pytest.mark.parametrize("header", [None, "", "   "])
    def test_missing(self, header: str | None) -> None:
        with pytest.raises(MissingCredentials) as info:
            parse_bearer(header)
        assert info.value.status_code == 401
        assert info.value.www_authenticate.startswith("Bearer")

    @pytest.mark.parametrize(
        ("template", "message"),
        [
            ("Bearer", "malformed"),
            ("Bearer{}", "malformed"),
            ("Bearer {} extra", "malformed"),
            ("Bearer\t{}", "malformed"),
            ("Basic {}", "scheme 'Basic'"),
            ("Token {}", "scheme 'Token'"),
            ("Bearer {}x", "not a wirelab API token"),
        ],
    )
    def test_invalid(self, template: str, message: str) -> None:
        token = generate_token()
        with pytest.raises(InvalidCredentials, match=message) as info:
            parse_bearer(template.format(token))
        assert token not in str(info.value)
        assert info.value.status_code == 401
        assert 'error="invalid_token"' in info.value.www_authenticate

    def test_not_a_token(self) -> None:
        with pytest.raises(InvalidCredentials, match="not a wirelab API token"):
            parse_bearer("Bearer abc.def")

    def test_errors_are_in_the_tree(self) -> None:
        assert issubclass(MissingCredentials, AuthenticationError)
        assert issubclass(InvalidCredentials, AuthenticationError)
        assert issubclass(AuthenticationError, WirelabError)
