"""What a fake ADClient needs so that _ad_sources.ADSources can use it (tests patch _ad_sources.ADClient with it)."""


class ConnectableFake:
    """The connection side of an ADClient: one domain controller of DC=lab,DC=test, connected at once."""

    base_dn = "DC=lab,DC=test"
    host = "dc1"
    reconnections = ()
    recovered = ()

    def connect(self):
        return self

    def close(self):
        pass
