/* version.h - the version of every tool, in one place (the Makefile, the
 * Debian packaging and bin/cm-worker take it from here or from a tool). */
#ifndef CM_VERSION_H
#define CM_VERSION_H

#define CM_VERSION "0.1.0"

#endif
