# The docs site of eventplatform.eventbus, built by scripts/docs_site.py with antsibull-docs
# (made with `antsibull-docs sphinx-init --use-current`, then adapted): every module, plugin,
# role entry point and the playbooks' page (docs/docsite), rendered as docs.ansible.com does.
# The build has no network: intersphinx reads a local inventory of the few docs.ansible.com
# pages the collection's docs link to (written by the build), so those links still resolve.

project = "eventplatform.eventbus"
copyright = "eventbus-ops contributors"  # noqa: A001 - Sphinx reads this name
title = "eventplatform.eventbus"
html_short_title = "eventplatform.eventbus"

extensions = ["sphinx.ext.intersphinx", "sphinx_antsibull_ext"]

pygments_style = "ansible"
highlight_language = "YAML+Jinja"

html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

intersphinx_mapping = {
    "ansible_devel": ("https://docs.ansible.com/projects/ansible/devel/", "../ansible_devel.inv"),
}

default_role = "any"
nitpicky = True
