"""The entraid.dirsync lab: a Samba AD DC, an Entra ID / Graph emulator and a simulated sync engine."""
