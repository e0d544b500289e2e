"""The start of a test play for the lab's inventory host, with both connections set once for the collection."""

PLAY_HEADER = """
- hosts: lab
  gather_facts: false
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  tasks:
"""
