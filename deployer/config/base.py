"""Building blocks shared by every config section module."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployer.config.names import EnvVarName


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SecretRef(Section):
    from_env: EnvVarName | None = Field(
        default=None, description="Take the value from this variable on the control host."
    )
    vault: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Take the value from this key of the vault file.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.from_env is None) == (self.vault is None):
            raise ValueError("set exactly one of 'from_env' or 'vault'")
        return self
